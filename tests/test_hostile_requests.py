"""Hostile requests against render.yaml's real server on loopback: malformed HTTP over raw
sockets, a forged log line, a bounded fuzz campaign, and a model file changed under the
worker. Every loop is bounded in count and time; the service never answers 5xx or hangs.
"""

import random
import shutil
import socket
import time

import numpy as np
import orjson
import pytest
import requests

pytestmark = pytest.mark.slow
FLOAT32 = "application/octet-stream"


@pytest.fixture(scope="module")
def sample(demo_workspace) -> np.ndarray:
    """One raw held-out sample of the demo."""
    with np.load(demo_workspace.demo_dir / "heldout.npz") as heldout:
        return heldout["X"][0].astype("<f4")


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
