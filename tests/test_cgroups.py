"""Real processes in real groups: the kernel's memory and CPU figures, OOM kills, CPU quota,
and clean-up on every way out of the block.

Every test runs on whichever enforcing backend this machine has (cgroup v1 here, v2 or
systemd-run on GitHub's runners) and asserts only what any of them shows.
"""

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from cgroup_helpers import (
    ENFORCING,
    allocate,
    is_live,
)

from pipeline import cgroups
from pipeline.cgroups import (
    MemoryGroupError,
)


@pytest.mark.slow
def test_a_child_within_the_limit_runs_and_its_peak_is_the_kernels(cgroup_limit, cgroup_marker):
    with cgroup_limit(512) as group:
        assert group.enforced and group.backend in ENFORCING
        process = group.popen(allocate(100, cgroup_marker))
        assert process.wait(timeout=30) == 0
        assert 100 <= group.peak_mb() < 200
        assert group.oom_kills() == 0 and group.failcnt() == 0
    assert not group.directory.exists()
    assert group.peak_mb() >= 100, "the last figures stay readable after the group is gone"
    with pytest.raises(MemoryGroupError, match="is closed"):
        group.popen(["true"])


@pytest.mark.slow
def test_a_file_evicted_from_the_page_cache_is_charged_to_the_group_that_maps_it(
    cgroup_limit, cgroup_marker, tmp_path
):
    # A model the pipeline just wrote is cached and charged to the pipeline's own group; a
    # service that mmaps it would look 80 MB smaller than it is on a fresh host.
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(80 * 2**20))
    reader = (
        "import mmap, sys; f = open(sys.argv[1], 'rb');"
        "m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ);"
        "sum(m[i] for i in range(0, len(m), 4096))"
    )
    with cgroup_limit(512) as group:
        assert group.popen([sys.executable, "-c", reader, str(model), cgroup_marker]).wait(30) == 0
        warm_peak = group.peak_mb()
    cgroups.evict_from_page_cache(model)
    with cgroup_limit(512) as group:
        assert group.popen([sys.executable, "-c", reader, str(model), cgroup_marker]).wait(30) == 0
        evicted_peak = group.peak_mb()
    assert warm_peak < 40 and evicted_peak >= warm_peak + 75


@pytest.mark.slow
def test_a_child_over_the_limit_is_oom_killed_and_counted(cgroup_limit, cgroup_marker):
    with cgroup_limit(256) as group:
        process = group.popen(allocate(700, cgroup_marker))
        assert process.wait(timeout=30) == -signal.SIGKILL
        assert group.oom_kills() >= 1 and group.failcnt() >= 1
        assert 0.9 * 256 <= group.peak_mb() <= 257
    assert not group.directory.exists()


@pytest.mark.slow
def test_processes_started_in_one_group_share_its_limit(cgroup_limit, cgroup_marker):
    with cgroup_limit(256) as group:
        children = [group.popen(allocate(180, cgroup_marker, hold_seconds=1.5)) for _ in range(2)]
        assert sorted(child.wait(timeout=30) for child in children) == [-signal.SIGKILL, 0]
        assert group.oom_kills() == 1


@pytest.mark.slow
def test_a_shell_command_and_its_children_run_in_the_group_and_die_with_it(
    cgroup_limit, cgroup_marker
):
    with cgroup_limit(512) as group:
        sleeper = f"{sys.executable} -c 'import time; time.sleep(60)' {cgroup_marker} & wait"
        shell = group.popen(sleeper)
        deadline = time.monotonic() + 5
        while len(group.pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = group.pids()
        assert shell.pid in pids and len(pids) == 2
    assert shell.returncode == -signal.SIGTERM
    assert not any(is_live(pid) for pid in pids)


@pytest.mark.slow
def test_an_exception_inside_the_block_still_kills_and_removes(cgroup_limit, cgroup_marker):
    with pytest.raises(RuntimeError, match="the caller failed"), cgroup_limit(512) as group:
        process = group.popen(allocate(10, cgroup_marker, hold_seconds=60))
        raise RuntimeError("the caller failed")
    assert process.returncode == -signal.SIGTERM
    assert not group.directory.exists()


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler for the test, whatever pytest inherited (a shell that starts
    it in the background ignores SIGINT, and Python then installs no handler); restored after."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


@pytest.mark.slow
def test_ctrl_c_inside_the_block_still_kills_and_removes(
    cgroup_limit, cgroup_marker, ctrl_c_raises
):
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), cgroup_limit(512) as group:
        process = group.popen(allocate(10, cgroup_marker, hold_seconds=60))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the KeyboardInterrupt lands here
    assert process.returncode == -signal.SIGTERM
    assert not group.directory.exists()
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.slow
def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(cgroup_limit, cgroup_marker):
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    with cgroup_limit(512, term_grace_seconds=1.0) as group:
        process = group.popen(
            [sys.executable, "-c", stubborn, cgroup_marker], stdout=subprocess.PIPE
        )
        assert process.stdout.readline() == b"ready\n"
        leaving = time.monotonic()
    # The grace was given (a busy machine only lengthens it), and the child was killed rather
    # than waited for: left alone it would sleep 60 s and exit 0.
    assert time.monotonic() - leaving >= 1.0
    assert process.returncode == -signal.SIGKILL
    process.stdout.close()


@pytest.mark.slow
def test_without_a_cgroup_the_peak_is_sampled_and_not_enforced(cgroup_limit, cgroup_marker, caplog):
    with caplog.at_level(logging.WARNING), cgroup_limit(512, backend="none") as group:
        assert not group.enforced and group.backend == "none"
        process = group.popen(allocate(100, cgroup_marker, hold_seconds=0.6))
        assert process.wait(timeout=30) == 0
        assert 100 <= group.peak_mb() < 250
        assert group.oom_kills() == 0 and group.failcnt() == 0
    assert "512 MB memory limit is NOT enforced" in caplog.text


@pytest.mark.slow
def test_a_cpu_share_holds_a_busy_child_to_its_quota(cgroup_limit, cgroup_marker):
    # One second of wall time spinning: CPU over wall is about 1 unconfined. The quota is a
    # ceiling (0.1 CPU per 100 ms period), so a busy machine can only lower the ratio.
    spin = (
        "import time; cpu, start = time.process_time(), time.monotonic()\n"
        "while time.monotonic() < start + 1.0: pass\n"
        "print(time.process_time() - cpu, time.monotonic() - start)"
    )
    with cgroup_limit(512, cpu_share=0.1) as group:
        assert group.cpu_enforced, group.cpu_note
        group.prioritise_cpu()  # first in line for its quota, however busy the host
        process = group.popen([sys.executable, "-c", spin, cgroup_marker], stdout=subprocess.PIPE)
        cpu_seconds, wall_seconds = map(float, process.communicate(timeout=60)[0].split())
        throttled_periods, throttled_seconds = group.cpu_throttling()
    assert cpu_seconds / wall_seconds <= 2 * 0.1, (cpu_seconds, wall_seconds)
    assert throttled_periods > 0 and throttled_seconds > 0, "the kernel says it throttled"
    assert group.cpu_throttling() == (throttled_periods, throttled_seconds), "kept after close"


@pytest.mark.slow
def test_the_group_counts_its_cpu_in_the_kernels_accounting_and_its_wait_for_a_cpu(
    cgroup_limit, cgroup_marker
):
    # 0.3 CPU-seconds of work: the kernel charges them to the group, whatever the host does.
    burn = "import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    with cgroup_limit(512) as group:
        prioritised = group.prioritise_cpu()
        process = group.popen([sys.executable, "-c", burn, cgroup_marker])
        assert process.wait(timeout=60) == 0
        used, waited = group.cpu_usage_seconds(), group.cpu_wait_seconds()
    assert 0.3 <= used < 0.3 + 1.0, "the work plus Python's start, counted after the exit"
    if group.backend in ("cgroup-v1", "cgroup-v2"):
        assert group.cpu_accounting in ("cpuacct.usage", "cpu.stat") and prioritised
        assert waited is not None and waited >= 0.0
