"""A process already running joins a real group: it and its children are held to the
group's share and stop with it; a process that is not running cannot join.
"""

import signal
import subprocess
import sys
import time

import psutil
import pytest
from cgroup_helpers import is_live

from pipeline.cgroups import (
    MemoryGroupError,
)


def wait_for_children(pid: int, count: int) -> list[int]:
    """The pids of `pid`'s children once it has `count` of them (5 s at most)."""
    deadline = time.monotonic() + 5
    while len(children := psutil.Process(pid).children()) < count:
        assert time.monotonic() < deadline, f"{pid} did not start {count} children"
        time.sleep(0.05)
    return [child.pid for child in children]


@pytest.mark.slow
@pytest.mark.parametrize("backend", [None, "none"])
def test_a_running_process_and_its_children_join_the_group_and_stop_with_it(
    cgroup_limit, cgroup_marker, backend
):
    sleeper = f"{sys.executable} -c 'import time; time.sleep(60)' {cgroup_marker} & wait"
    shell = subprocess.Popen(["bash", "-c", sleeper, cgroup_marker], start_new_session=True)
    try:
        (child,) = wait_for_children(shell.pid, 1)
        with cgroup_limit(512, backend=backend) as group:
            group.join(shell.pid)
            assert sorted(group.pids()) == sorted([shell.pid, child])
        assert shell.wait(timeout=5) == -signal.SIGTERM
        assert not is_live(child)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()


@pytest.mark.slow
def test_a_cpu_only_group_holds_a_process_that_joins_it_to_its_share(cgroup_limit, cgroup_marker):
    spin = "import time; end = time.monotonic() + 30\nwhile time.monotonic() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin, cgroup_marker])
    try:
        with cgroup_limit(None, cpu_share=0.1) as group:
            assert group.cpu_enforced, group.cpu_note
            group.prioritise_cpu()
            group.join(busy.pid)
            before, started = group.cpu_seconds(), time.monotonic()
            time.sleep(1.5)
            cpu_seconds = group.cpu_seconds() - before
            wall_seconds = time.monotonic() - started
            throttled_periods, _ = group.cpu_throttling()
        assert busy.wait(timeout=5) == -signal.SIGTERM
    finally:
        if busy.poll() is None:
            busy.kill()
            busy.wait()
    # A share, not a time: the quota caps CPU over wall at 0.1 (plus a period's burst).
    assert cpu_seconds / wall_seconds <= 2 * 0.1 and throttled_periods > 0


def test_a_process_that_is_not_running_cannot_join(cgroup_limit):
    finished = subprocess.Popen(["true"])
    finished.wait()
    with (
        cgroup_limit(64, backend="none") as group,
        pytest.raises(MemoryGroupError, match="not running"),
    ):
        group.join(finished.pid)
