"""Adaptive batching on the real demo candidate: same answers as batch 1, in order, isolated.

The batcher runs in-process here with real threads (the service runs it as a greenlet): its
answers are compared with every sample run alone through the batch-1 model, within parity's
tolerance for quantization `none`.
"""

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from app_helpers import FLOAT32

from pipeline.paths import REPO_ROOT
from service.batching import Batcher
from service.bundle import BundleError
from service.predictor import InputError, Predictor

pytestmark = pytest.mark.slow
TOLERANCE = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["parity"]["thresholds"]["none"][
    "max_abs_diff"
]


def alone(predictor: Predictor, samples: np.ndarray) -> np.ndarray:
    return predictor.predict_proba(samples, route="single")


def submit_concurrently(batcher: Batcher, requests_samples: list[np.ndarray]) -> list:
    """Each array as one request from its own thread, all at once: outputs or the exception."""
    results: list = [None] * len(requests_samples)
    start = threading.Barrier(len(requests_samples))

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = batcher.outputs(requests_samples[index])
        except Exception as error:  # the test inspects what each request got
            results[index] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests_samples))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_the_bundle_holds_a_batched_model_that_the_predictor_loads(predictor, candidate_dir):
    assert predictor.batch_size == 4
    assert (Path(candidate_dir) / predictor.manifest["batched"]["file"]).is_file()


def test_concurrent_single_sample_requests_share_invokes_and_keep_their_answers(
    predictor, heldout_samples
):
    batcher = Batcher(predictor, max_wait_seconds=0.05, samples_admitted=lambda: 16)
    results = submit_concurrently(batcher, [heldout_samples[i : i + 1] for i in range(16)])
    expected = alone(predictor, heldout_samples[:16])
    for index, outputs in enumerate(results):
        assert isinstance(outputs, np.ndarray), outputs
        # Each request gets its own sample's answer, whatever batch it shared.
        assert np.abs(outputs[0] - expected[index]).max() <= TOLERANCE
        assert outputs[0].argmax() == expected[index].argmax()
    assert batcher.samples == 16 and batcher.batches < 16  # samples did share invokes


def test_a_clients_own_batch_runs_in_order_through_batched_invokes(predictor, heldout_samples):
    batcher = Batcher(predictor, max_wait_seconds=0.0)
    outputs = batcher.outputs(heldout_samples[:10])  # 4 + 4 batched, the last 2 alone (pad from 3)
    assert np.abs(outputs - alone(predictor, heldout_samples[:10])).max() <= TOLERANCE
    assert batcher.batches == 3
    # Mixed requests of several sizes at once: each gets its rows, in its order.
    sizes = [1, 3, 7, 2, 5, 4]
    starts = np.cumsum([0, *sizes])
    parts = [heldout_samples[starts[i] : starts[i + 1]] for i in range(len(sizes))]
    results = submit_concurrently(batcher, parts)
    for part, outputs in zip(parts, results, strict=True):
        assert np.abs(outputs - alone(predictor, part)).max() <= TOLERANCE


def test_a_lone_request_is_not_padded_or_kept_waiting(predictor, heldout_samples):
    batcher = Batcher(predictor, max_wait_seconds=5.0)
    outputs = batcher.outputs(heldout_samples[:1])  # no concurrency seen: runs at once, batch 1
    assert np.abs(outputs - alone(predictor, heldout_samples[:1])).max() <= TOLERANCE
    assert batcher.batches == 1


class FailsOnMarker(Predictor):
    """The demo predictor, except that a batch holding the marker fails as a runtime error
    would, and the first batch waits for `release`: the test queues requests meanwhile."""

    MARKER = 12345.0

    def outputs(self, normalised, route="auto"):
        self.entered.set()
        self.release.wait(timeout=30)
        if (self.normalised_marker == normalised[:, 0, 0]).any():
            raise RuntimeError("invoke failed")
        return super().outputs(normalised, route)


def test_a_failing_batch_fails_only_its_own_requests(candidate_dir, heldout_samples):
    predictor = FailsOnMarker(candidate_dir)
    poisoned = heldout_samples[1:2].copy()
    poisoned[0, 0, 0] = FailsOnMarker.MARKER
    predictor.normalised_marker = predictor.normalise(poisoned)[0, 0, 0]
    predictor.entered, predictor.release = threading.Event(), threading.Event()
    batcher = Batcher(predictor, max_wait_seconds=0.0)
    # While the first request's batch is held, eight one-sample requests queue in order: the
    # poisoned one and the next three share a batch of 4, the last four share the next.
    bodies = [heldout_samples[:1], poisoned, *(heldout_samples[i : i + 1] for i in range(2, 9))]
    results: list = [None] * len(bodies)

    def one(index: int) -> None:
        try:
            results[index] = batcher.outputs(bodies[index])
        except RuntimeError as error:
            results[index] = error

    threads = []
    for index in range(len(bodies)):
        threads.append(threading.Thread(target=one, args=(index,)))
        threads[-1].start()
        if index == 0:
            assert predictor.entered.wait(timeout=10)  # the first batch holds request 0 alone
        deadline = time.monotonic() + 10
        while batcher.queued_samples < index and time.monotonic() < deadline:
            time.sleep(0.001)  # in the queue before the next one comes
    predictor.release.set()
    for thread in threads:
        thread.join(timeout=30)
    failed = [index for index, result in enumerate(results) if isinstance(result, RuntimeError)]
    assert failed == [1, 2, 3, 4], results
    for index in (0, 5, 6, 7, 8):
        assert np.abs(results[index] - alone(predictor, bodies[index])).max() <= TOLERANCE
    # The runner keeps serving after a failed batch.
    again = batcher.outputs(heldout_samples[16:17])
    assert np.abs(again - alone(predictor, heldout_samples[16:17])).max() <= TOLERANCE


def test_a_sample_that_overflows_once_normalised_fails_only_its_request(predictor, heldout_samples):
    scale = np.asarray(predictor.manifest["preprocessing"]["scale"], dtype=np.float32)
    overflowing = heldout_samples[:1].copy()
    # The demo's largest scale is above 1: the largest float32 times it is infinite.
    overflowing[0, 0, int(np.argmax(np.abs(scale)))] = np.finfo(np.float32).max
    assert not np.isfinite(predictor.normalise(overflowing)).all()
    batcher = Batcher(predictor, max_wait_seconds=0.05, samples_admitted=lambda: 2)
    results = submit_concurrently(batcher, [overflowing, heldout_samples[1:2]])
    assert isinstance(results[0], InputError) and "overflows" in str(results[0])
    assert np.abs(results[1] - alone(predictor, heldout_samples[1:2])).max() <= TOLERANCE


def test_the_service_answers_concurrent_clients_as_batch_1_would(
    demo_service, predictor, heldout_samples
):
    answers: list = [None] * 16

    def client(index: int) -> None:
        response = requests.post(
            f"{demo_service.url}/api/predict/?top_k=10",
            data=heldout_samples[index].tobytes(),
            headers=FLOAT32,
            timeout=30,
        )
        answers[index] = (response.status_code, response.json())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = alone(predictor, heldout_samples[:16])
    labels = predictor.contract.labels
    for index, (status, body) in enumerate(answers):
        assert status == 200, body
        (answer,) = body["predictions"]
        served = {entry["label"]: entry["probability"] for entry in answer["top_k"]}
        assert answer["label"] == labels[int(expected[index].argmax())]
        assert max(abs(served[label] - expected[index][i]) for i, label in enumerate(labels)) <= (
            TOLERANCE
        )


def batch_1_only_bundle(candidate_dir: Path, folder: Path) -> Path:
    """A copy of the candidate as bundles written before batched models: no `batched`."""
    folder.mkdir()
    shutil.copy2(candidate_dir / "model.tflite", folder / "model.tflite")
    manifest = json.loads((candidate_dir / "manifest.json").read_text())
    del manifest["batched"], manifest["files"]["model_batched.tflite"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_batch_1_only_bundle_still_serves_through_the_batcher(
    candidate_dir, heldout_samples, tmp_path
):
    predictor = Predictor(batch_1_only_bundle(candidate_dir, tmp_path / "old"))
    assert predictor.batch_size == 1
    batcher = Batcher(predictor, max_wait_seconds=0.05, samples_admitted=lambda: 6)
    parts = [heldout_samples[:1], heldout_samples[1:4], heldout_samples[4:6]]
    for part, outputs in zip(parts, submit_concurrently(batcher, parts), strict=True):
        assert np.abs(outputs - alone(predictor, part)).max() <= TOLERANCE


def test_a_batched_model_that_does_not_match_its_manifest_is_refused(candidate_dir, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(candidate_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["batched"]["batch_size"] = 8  # the file takes batches of 4
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"model_batched.tflite takes input \(4, 65, 243\)"):
        Predictor(folder)
    (folder / "model_batched.tflite").write_bytes(b"not the model")
    with pytest.raises(BundleError, match=r"model_batched\.tflite is corrupt: its sha256 is"):
        Predictor(folder)
