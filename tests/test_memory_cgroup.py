"""Real processes in real memory groups: the kernel's figures, OOM kills, and clean-up."""

import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.memory_cgroup import V1_ROOT, MemoryGroupError, _own_group, memory_limit, open_group

pytestmark = pytest.mark.slow


def allocate(megabytes: int, hold_seconds: float = 0.3) -> list[str]:
    """argv of a Python child that touches `megabytes` of memory, then holds it."""
    code = f"b = bytearray({megabytes} * 2**20); import time; time.sleep({hold_seconds})"
    return [sys.executable, "-c", code]


def memory_groups_left(prefix: str) -> list[str]:
    own = _own_group("memory")
    parent = V1_ROOT / own.lstrip("/") if own else None
    if parent is None or not parent.exists():
        return []
    return [entry.name for entry in parent.iterdir() if entry.name.startswith(prefix)]


@pytest.fixture
def group_prefix(request) -> str:
    """A name prefix unique to the test; afterwards no group of that name may remain."""
    prefix = f"t{abs(hash(request.node.name)) % 10**8}"
    yield prefix
    assert memory_groups_left(prefix) == []


def test_a_child_within_the_limit_runs_and_its_peak_is_the_kernels(group_prefix):
    with memory_limit(512, group_prefix) as group:
        assert group.enforced and group.backend == "cgroup-v1"
        process = group.popen(allocate(100))
        assert process.wait(timeout=30) == 0
        assert 100 <= group.peak_mb() < 200
        assert group.oom_kills() == 0


def test_a_child_over_the_limit_is_oom_killed_and_counted(group_prefix):
    with memory_limit(256, group_prefix) as group:
        process = group.popen(allocate(700))
        assert process.wait(timeout=30) == -signal.SIGKILL
        assert group.oom_kills() >= 1
        assert 240 <= group.peak_mb() <= 257


def test_a_shell_command_runs_inside_the_group_with_its_children(group_prefix):
    with memory_limit(512, group_prefix) as group:
        process = group.popen(f"{sys.executable} -c 'import time; time.sleep(30)' & wait")
        deadline = time.monotonic() + 5
        while len(group.pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.pid in group.pids() and len(group.pids()) == 2
        pids = group.pids()
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )


def test_an_exception_inside_the_block_still_removes_group_and_processes(group_prefix):
    with pytest.raises(RuntimeError), memory_limit(512, group_prefix) as group:
        process = group.popen(allocate(10, hold_seconds=60))
        raise RuntimeError("the caller failed")
    assert process.poll() is not None


def test_a_child_that_ignores_sigterm_is_killed_within_the_deadline(group_prefix):
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    started = time.monotonic()
    with memory_limit(512, group_prefix) as group:
        process = group.popen([sys.executable, "-c", stubborn])
        time.sleep(0.3)
    assert process.poll() == -signal.SIGKILL
    assert time.monotonic() - started < 15


def test_without_a_cgroup_the_peak_is_sampled_and_not_enforced(capfd):
    with memory_limit(512, "sampled", backend="none") as group:
        assert not group.enforced and group.backend == "none"
        process = group.popen(allocate(100, hold_seconds=0.6))
        assert process.wait(timeout=30) == 0
        assert 100 <= group.peak_mb() < 250
        assert group.oom_kills() == 0
    assert "NOT enforced" in capfd.readouterr().err


def test_the_backend_can_be_forced_from_the_environment(monkeypatch):
    monkeypatch.setenv("MEMORY_CGROUP_BACKEND", "none")
    with memory_limit(64, "forced") as group:
        assert group.backend == "none"


def test_an_unknown_backend_is_named_in_the_error():
    with pytest.raises(MemoryGroupError, match="'cgroup-v9' is unknown"):
        open_group(64, "bad", backend="cgroup-v9")


def test_cgroup_v2_without_a_delegated_memory_controller_says_so():
    with pytest.raises(MemoryGroupError, match="cgroup-v2"):
        open_group(64, "v2", backend="cgroup-v2")
    assert Path("/proc/self/cgroup").exists()
