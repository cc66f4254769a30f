"""The post-deploy smoke check against real services on loopback."""

import json
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from service_runner import RunningService
from shared_builds import built_once
from smoke_runner import smoke
from workspaces import swap_model, workspace_like

from pipeline.gate.render_service import free_port
from pipeline.params import load_params
from pipeline.paths import Workspace
from pipeline.release.bundle import blessed_verdicts, write_release
from pipeline.verdicts import write_verdict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def release_dir(checked_workspace, gated_workspace, tmp_path_factory):
    """A promoted bundle (release/) for the demo candidate, golden set included, made once per
    run; a test that changes it copies it."""

    def build(folder: Path) -> None:
        workspace = workspace_like(checked_workspace, folder / "ws")
        # Each real verdict as its stage writes it here: the fingerprint names this workspace.
        for stage, source in (
            ("convert", checked_workspace),
            ("parity", checked_workspace),
            ("gate", gated_workspace),
        ):
            verdict = json.loads(source.report_path(stage).read_text())
            verdict.pop("inputs_fingerprint", None)
            write_verdict(workspace, stage, verdict)
        params = load_params(workspace)
        verdicts = blessed_verdicts(workspace)
        write_release(workspace, workspace.release_dir, 1, "model-v1", "0" * 40, params, verdicts)

    return Workspace(built_once(tmp_path_factory, "release", build) / "ws").release_dir


def test_a_healthy_service_with_the_promoted_model_passes(start_service, release_dir, tmp_path):
    service = start_service(release_dir)
    summary, report_path = tmp_path / "summary.md", tmp_path / "report.json"
    completed = smoke(
        service.url,
        release_dir / "manifest.json",
        report_path=report_path,
        GITHUB_STEP_SUMMARY=str(summary),
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(report_path.read_text())
    manifest = json.loads((release_dir / "manifest.json").read_text())
    assert (report["outcome"], report["passed"]) == ("ok", True)
    assert report["release"] == {"tag": "model-v1", "sha256": manifest["sha256"]}
    assert report["live_sha256"] == manifest["sha256"]
    assert report["markdown"] == summary.read_text()
    assert "PASS golden set: 3 samples, labels match" in completed.stdout
    assert "PASS malformed request gets 4xx: malformed request answered 400" in completed.stdout
    assert (
        "Smoke check of" in summary.read_text() and "| golden set | pass |" in summary.read_text()
    )


def test_a_service_serving_another_model_fails_naming_both_sha256s(
    start_service, release_dir, tmp_path
):
    service = start_service(release_dir)
    promoted = json.loads((release_dir / "manifest.json").read_text())
    other = tmp_path / "other-release"
    shutil.copytree(release_dir, other)
    live_sha256, promoted["sha256"] = promoted["sha256"], "b" * 64
    (other / "manifest.json").write_text(json.dumps(promoted))
    completed = smoke(
        service.url, other / "manifest.json", deadline=2, report_path=tmp_path / "report.json"
    )
    assert completed.returncode == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["outcome"], report["live_sha256"]) == ("wrong_model", live_sha256)
    attempts = [line for line in completed.stdout.splitlines() if line.startswith("attempt ")]
    # Said on every attempt, however few a busy machine fits into the deadline.
    assert attempts and all(
        f"still serving {live_sha256}, waiting for {'b' * 64}" in line for line in attempts
    ), completed.stdout


def test_a_service_serving_a_different_model_of_the_same_shape_fails_the_golden_set(
    start_service, release_dir, drifted_candidate_dir, tmp_path
):
    # release/ with its model swapped for one of the same shape (the manifest names the new
    # file, so health and sha256 pass): only the golden answers can tell.
    swapped = tmp_path / "swapped-release"
    shutil.copytree(release_dir, swapped)
    swap_model(swapped, drifted_candidate_dir)
    service = start_service(swapped)
    completed = smoke(service.url, swapped / "manifest.json", report_path=tmp_path / "r.json")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert json.loads((tmp_path / "r.json").read_text())["outcome"] == "golden_mismatch"
    assert "PASS health and model sha256" in completed.stdout
    assert "FAIL golden set: " in completed.stdout and "(tolerance 0.001)" in completed.stdout
    assert "smoke check FAILED" in completed.stdout


def answers_malformed_with_200(manifest: dict):
    """A WSGI app that is healthy with the manifest's model and answers its golden set, but
    takes a malformed request as fine (200): what a service that swallows errors does."""
    golden, labels = manifest["golden"], manifest["labels"]
    predictions = [
        {
            "label": label,
            "top_k": [
                {"label": name, "probability": value}
                for name, value in zip(labels, probabilities, strict=True)
            ],
        }
        for label, probabilities in zip(golden["labels"], golden["probabilities"], strict=True)
    ]

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/api/health/":
            body = {"status": "ok", "predictor": "ready", "model_sha256": manifest["sha256"]}
        elif environ.get("CONTENT_TYPE") == "application/octet-stream":
            body = {"predictions": predictions}
        else:
            body = {"predictions": []}  # whatever was sent
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    return app


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # the test's output is the smoke check's
        pass


def test_a_service_that_answers_a_malformed_request_with_200_fails(release_dir, tmp_path):
    manifest = json.loads((release_dir / "manifest.json").read_text())
    server = make_server(
        "127.0.0.1", 0, answers_malformed_with_200(manifest), handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        completed = smoke(url, release_dir / "manifest.json", report_path=tmp_path / "r.json")
    finally:
        server.shutdown()
        server.server_close()
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert json.loads((tmp_path / "r.json").read_text())["outcome"] == "malformed_accepted"
    assert "PASS golden set: 3 samples, labels match" in completed.stdout
    assert "FAIL malformed request gets 4xx: malformed request answered 200" in completed.stdout


def test_a_service_that_becomes_healthy_after_a_while_passes(release_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    services = []
    # The service comes up only after 3 s, as a free instance waking from sleep does.
    timer = threading.Timer(
        3.0, lambda: services.append(RunningService(release_dir, env={"PORT": str(port)}))
    )
    timer.start()
    try:
        completed = smoke(url, release_dir / "manifest.json", deadline=40)
    finally:
        timer.join()
        for service in services:
            service.stop()
    assert completed.returncode == 0, completed.stdout
    assert "attempt 1/" in completed.stdout and "ConnectionError" in completed.stdout


def test_a_service_with_an_lfs_pointer_fails_naming_the_cause(start_service, release_dir, tmp_path):
    pointer_release = tmp_path / "release"
    shutil.copytree(release_dir, pointer_release)
    (pointer_release / "model.tflite").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n"
    )
    service = start_service(pointer_release, env={"LFS_PULL_LOG": str(tmp_path / "none.log")})
    completed = smoke(  # or TimeoutExpired
        service.url, release_dir / "manifest.json", deadline=3, report_path=tmp_path / "r.json"
    )
    assert completed.returncode == 1
    assert (
        "HTTP 503 (lfs_not_pulled): model.tflite is a Git LFS pointer: the build did not pull"
        in completed.stdout
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcome"] == "not_ready"
    assert "model.tflite is a Git LFS pointer" in report["checks"][0]["detail"]


def test_a_service_that_is_down_fails_at_the_deadline(release_dir, tmp_path):
    started = time.monotonic()
    completed = smoke(
        f"http://127.0.0.1:{free_port()}",
        release_dir / "manifest.json",
        deadline=3,
        report_path=tmp_path / "r.json",
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 1
    assert json.loads((tmp_path / "r.json").read_text())["outcome"] == "unreachable"
    assert "not healthy within 3 s" in completed.stdout
    assert elapsed >= 3, "it waited for the deadline (smoke()'s timeout bounds it from above)"


def test_a_missing_manifest_is_a_usage_error(tmp_path):
    report_path = tmp_path / "reports" / "smoke.json"
    completed = smoke("http://127.0.0.1:9", tmp_path / "none.json", 1, report_path)
    assert completed.returncode == 2 and "does not exist" in completed.stderr
    report = json.loads(report_path.read_text())
    assert (report["outcome"], report["passed"]) == ("manifest_error", False)
    assert "none.json does not exist; pass --manifest" in report["checks"][0]["detail"]


def test_a_service_that_accepts_but_never_answers_times_out(release_dir, tmp_path):
    # A listening socket nobody reads: the connection opens (the kernel completes it), no
    # answer ever comes, as with a cold start that outlasts the deadline.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        completed = smoke(url, release_dir / "manifest.json", 2, tmp_path / "r.json")
    assert completed.returncode == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcome"] == "timeout" and "ReadTimeout" in report["checks"][0]["detail"]


def test_a_candidate_manifest_without_a_golden_set_is_a_clear_usage_error(candidate_dir, tmp_path):
    completed = smoke("http://127.0.0.1:9", candidate_dir / "manifest.json", deadline=1)
    assert completed.returncode == 2, completed.stderr
    assert "has no golden set: it is a candidate's manifest, not a release's" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_missing_golden_file_is_a_clear_usage_error(release_dir, tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(release_dir, copy)
    (copy / "golden.npz").unlink()
    completed = smoke("http://127.0.0.1:9", copy / "manifest.json", deadline=1)
    assert completed.returncode == 2, completed.stderr
    assert "golden.npz is missing" in completed.stderr and "git lfs pull" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_the_step_summary_escapes_markdown(start_service, release_dir, tmp_path):
    service = start_service(release_dir)
    summary = tmp_path / "summary.md"
    completed = smoke(service.url, release_dir / "manifest.json", GITHUB_STEP_SUMMARY=str(summary))
    assert completed.returncode == 0, completed.stdout
    golden_row = next(line for line in summary.read_text().splitlines() if "golden set" in line)
    assert "max \\|dp\\|" in golden_row
    assert len(re.findall(r"(?<!\\)\|", golden_row)) == 4  # three cells: the detail's bars escaped


def test_a_health_answer_that_is_not_a_json_object_is_named_not_a_crash(release_dir, tmp_path):
    def app(environ, start_response):  # JSON, but not the health answer's object
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'["ok"]']

    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        completed = smoke(url, release_dir / "manifest.json", 2, tmp_path / "r.json")
    finally:
        server.shutdown()
        server.server_close()
    assert completed.returncode == 1 and "Traceback" not in completed.stderr
    assert 'the health answer is not a JSON object: ["ok"]' in completed.stdout
    assert json.loads((tmp_path / "r.json").read_text())["outcome"] == "not_ready"
