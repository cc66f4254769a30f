"""Hostile requests against render.yaml's real server on loopback: malformed HTTP over raw
sockets, a forged log line, a bounded fuzz campaign, a model file changed under the worker,
and JSON bodies that expand in memory, in a real 256 MB group. Every loop is bounded in count
and time; the service never answers 5xx or hangs.
"""

import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests

from pipeline.cgroups import memory_limit
from pipeline.gate.render_service import RenderWebService, free_port
from pipeline.paths import REPO_ROOT

pytestmark = pytest.mark.slow
FLOAT32 = "application/octet-stream"


def raw_exchange(port: int, request: bytes, timeout: float = 5) -> bytes:
    """Send `request`, half-close, read the answer until the server closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        try:
            connection.sendall(request)
            connection.shutdown(socket.SHUT_WR)
        # Refused before it was all sent: a broken pipe, a reset, or the server already gone
        # by the half-close (ENOTCONN).
        except OSError:
            pass
        answer = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:  # the server closed with our bytes still unread
                return answer
            if not chunk:
                return answer
            answer += chunk


PREDICT = (
    b"POST /api/predict/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/octet-stream\r\nConnection: close\r\n"
)
MALFORMED = {
    "chunk size zz": PREDICT + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk size -5": PREDICT + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n",
    "chunk size 0x5": PREDICT + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n0\r\n\r\n",
    "chunk without CRLF": PREDICT + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcdeXX0\r\n\r\n",
    "closed mid-chunk": PREDICT + b"Transfer-Encoding: chunked\r\n\r\n100\r\nabc",
    "body shorter than Content-Length": PREDICT + b"Content-Length: 63180\r\n\r\n" + b"\0" * 999,
    "Content-Length not a number": PREDICT + b"Content-Length: 12x\r\n\r\nabc",
    "two Content-Lengths": PREDICT + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "non-UTF-8 JSON": (
        b"POST /api/predict/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Connection: close\r\nContent-Length: 17\r\n\r\n{"instances": \xff\xfe}'
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_http_gets_a_4xx_json_answer(demo_service, name):
    answer = raw_exchange(demo_service.port, MALFORMED[name])
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert 400 <= status < 500, answer[:300]
    assert b"Content-Type: application/json" in head, answer[:300]
    assert orjson.loads(body)["error"]
    assert requests.get(f"{demo_service.url}/api/health/", timeout=5).status_code == 200


def test_a_forged_log_line_is_escaped(demo_service):
    answer = raw_exchange(
        demo_service.port, b"GET /api/x%0aFORGED%1b[31m HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
    time.sleep(0.2)
    lines = demo_service.log_text().splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    assert any("/api/x\\nFORGED\\x1b[31m 404" in line for line in lines), lines[-5:]


def mutate(request: bytes, rng: random.Random) -> bytes:
    """One random mutation: flip bytes, cut, duplicate a slice, or insert junk."""
    data = bytearray(request)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:
        del data[rng.randrange(len(data)) :]
    elif kind == 2:
        start = rng.randrange(len(data))
        data[start:start] = data[start : start + rng.randint(1, 64)]
    else:
        data[rng.randrange(len(data)) : 0] = bytes(rng.randrange(256) for _ in range(8))
    return bytes(data)


def test_a_bounded_fuzz_campaign_never_gets_a_5xx_or_a_hang(demo_service, sample):
    small = sample[:4].reshape(-1)  # a short body keeps each exchange small
    seeds = [
        PREDICT + f"Content-Length: {sample.nbytes}\r\n\r\n".encode() + sample.tobytes(),
        b"POST /api/predict/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(orjson.dumps({'instances': small.tolist()})):x}\r\n".encode()
        + orjson.dumps({"instances": small.tolist()})
        + b"\r\n0\r\n\r\n",
        b"GET /api/health/?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    rng = random.Random(11)
    worker_before = requests.get(f"{demo_service.url}/api/health/", timeout=5).json()["worker_pid"]
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + 60
    for _ in range(300):
        if time.monotonic() > deadline:
            break
        answer = raw_exchange(demo_service.port, mutate(rng.choice(seeds), rng), timeout=5)
        status = int(answer.split()[1]) if answer.startswith(b"HTTP/1.") else 0
        statuses[status] = statuses.get(status, 0) + 1
    print(f"fuzz statuses (0 = closed without an answer): {statuses}")
    assert sum(statuses.values()) >= 100
    assert not [status for status in statuses if status >= 500], statuses
    health = requests.get(f"{demo_service.url}/api/health/", timeout=5).json()
    assert health["worker_pid"] == worker_before


def test_a_model_file_changed_under_the_worker_never_crashes_it(
    start_service, candidate_dir, sample, tmp_path
):
    bundle = tmp_path / "bundle"
    shutil.copytree(candidate_dir, bundle)
    service = start_service(bundle)
    first = requests.get(f"{service.url}/api/health/", timeout=5).json()
    (bundle / "model.tflite").write_bytes(b"")  # truncated, as a bad deploy or a disk would
    for _ in range(3):
        answer = requests.post(
            f"{service.url}/api/predict/",
            data=sample.tobytes(),
            headers={"Content-Type": FLOAT32},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["model_sha256"] == first["model_sha256"]
    assert (
        requests.get(f"{service.url}/api/health/", timeout=5).json()["worker_pid"]
        == first["worker_pid"]
    )


def test_expanding_json_bodies_are_refused_before_they_are_materialised(
    candidate_dir, sample, tmp_path
):
    port = free_port()
    render = RenderWebService.read(REPO_ROOT / "render.yaml")
    env = {
        **os.environ,
        **render.env,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PORT": str(port),
        "MODEL_DIR": str(candidate_dir),
    }
    url = f"http://127.0.0.1:{port}"
    empty_lists = b'{"instances": [' + b"[[]]," * ((8 << 20) // 5) + b"[[]]]}"
    ones = b'{"instances": [' + b"1.5," * (6 << 20) + b"1.5]}"
    full_batch = orjson.dumps({"instances": np.repeat(sample[None], 64, axis=0).tolist()})
    # Parsed whole, 8 MiB of [[]] would raise the worker by ~370 MB (FACTS.md): two at once
    # would be OOM-killed in this 256 MB group.
    with memory_limit(256, name_prefix="hostile") as group:
        group.popen(
            render.start_command,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                before = requests.get(f"{url}/api/health/", timeout=1).json()
                break
            except requests.RequestException:
                time.sleep(0.05)
        answers: list = []

        def post(body: bytes) -> None:
            answers.append(
                requests.post(
                    f"{url}/api/predict/",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                )
            )

        threads = [
            threading.Thread(target=post, args=(b,)) for b in (empty_lists, empty_lists, ones)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        refused = sorted(answer.status_code for answer in answers)
        assert all(400 <= status < 500 or status == 503 for status in refused), [
            (a.status_code, a.text[:200]) for a in answers
        ]
        # Alone, so the answer is the structure check's, never a shed (the three above race
        # for one admission and one large-parse slot: whichever is read first is judged).
        alone = requests.post(
            f"{url}/api/predict/",
            data=empty_lists,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert alone.status_code == 413 and "JSON lists" in alone.text, alone.text[:300]
        # The same expansion as an Open Inference Protocol tensor's data.
        v2_empty_lists = (
            b'{"inputs": [{"name": "input", "shape": [1, 65, 243], "datatype": "FP32", "data": ['
            + b"[[]]," * ((8 << 20) // 5)
            + b"[[]]]}]}"
        )
        v2 = requests.post(f"{url}/v2/models/model/infer", data=v2_empty_lists, timeout=60)
        assert v2.status_code == 413 and "JSON lists" in v2.json()["error"], v2.text[:300]
        # A JSON client can still send MAX_BATCH (64) real samples in one request.
        batch = requests.post(
            f"{url}/api/predict/",
            data=full_batch,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        assert batch.status_code == 200 and len(batch.json()["predictions"]) == 64, batch.text[:300]
        after = requests.get(f"{url}/api/health/", timeout=5).json()
        assert after["worker_pid"] == before["worker_pid"], "the worker died and was replaced"
        assert group.oom_kills() == 0
        print(
            f"worker RSS {before['worker_memory_mb']} -> {after['worker_memory_mb']} MB, "
            f"group peak {group.peak_mb():.1f} MB"
        )
