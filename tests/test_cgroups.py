"""Real processes in real groups: the kernel's figures, OOM kills, CPU quota, and clean-up.

Every test that needs a kernel runs on whichever enforcing backend this machine has (cgroup v1
here, v2 or systemd-run on GitHub's runners) and asserts only what any of them shows. Where a
backend cannot run here, its interface is a file-level stand-in: a directory laid out as the
kernel lays out a v2 group, or scripts that answer as systemd-run and systemctl do.
"""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from pipeline import cgroups
from pipeline.cgroups import (
    CgroupDirGroup,
    CgroupV1Group,
    CgroupV2Group,
    MemoryGroupError,
    common,
    memory_limit,
    open_group,
    resource_limit,
    workers_that_fit,
)
from pipeline.cgroups import v2 as cgroup_v2

ENFORCING = ("cgroup-v1", "cgroup-v2", "systemd-run")

# Stand-ins that behave as passwordless sudo and as systemd do (scope: own cgroup with its
# MemoryMax and CPUQuota, the command exec'd inside it, the cgroup removed once empty), on this
# machine's own memory hierarchy (v1 or v2); a v1 CPU quota goes to a file-level stand-in tree.
FAKE_SUDO = '#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n'
FAKE_SYSTEMD_RUN = """#!/bin/sh
while [ "$1" != -- ]; do
  case "$1" in
    --unit=*) scope="$FAKE_SYSTEMD_PARENT/${1#--unit=}.scope" ;;
    --property=MemoryMax=*) limit="${1#--property=MemoryMax=}" ;;
    --property=MemoryAccounting=yes) accounting=yes ;;
    --property=CPUQuota=*) percent="${1#--property=CPUQuota=}"; quota=$((${percent%\\%} * 1000)) ;;
  esac
  shift
done
shift
# Without memory accounting systemd makes the scope no memory cgroup to count it in.
[ -n "$limit$accounting" ] || { echo "no memory accounting for $scope" >&2; exit 1; }
mkdir "$scope" || exit 1
if [ -z "$limit" ]; then :
elif [ -e "$scope/memory.max" ]; then echo "$limit" > "$scope/memory.max"
else echo "$limit" > "$scope/memory.limit_in_bytes"; fi || exit 1
if [ -n "$quota" ] && [ -e "$scope/cpu.max" ]; then echo "$quota 100000" > "$scope/cpu.max"
elif [ -n "$quota" ]; then
  cpu="$FAKE_CPU_ROOT${scope#$FAKE_SYSTEMD_ROOT}"
  mkdir -p "$cpu" && echo "$quota" > "$cpu/cpu.cfs_quota_us"
fi
echo $$ > "$scope/cgroup.procs"
sh -c 'echo $$ > "$0/cgroup.procs"; for i in $(seq 600); do rmdir "$1" && exit; sleep 0.1; done' \\
  "$FAKE_SYSTEMD_PARENT" "$scope" 2>/dev/null &
exec "$@"
"""
FAKE_SYSTEMCTL = """#!/bin/sh
for unit; do :; done
[ -d "$FAKE_SYSTEMD_PARENT/$unit" ] && echo "${FAKE_SYSTEMD_PARENT#$FAKE_SYSTEMD_ROOT}/$unit"
exit 0
"""


def allocate(megabytes: int, marker: str, hold_seconds: float = 0.3) -> list[str]:
    """argv of a Python child that touches `megabytes` of memory, then holds it."""
    code = f"b = bytearray({megabytes} * 2**20); import time; time.sleep({hold_seconds})"
    return [sys.executable, "-c", code, marker]


def processes_marked(marker: str) -> list[psutil.Process]:
    """Live processes anywhere on the machine whose command line carries `marker`."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(marker in a for a in cmdline):
            found.append(process)
    return found


def is_live(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


def fake_tools(bin_dir: Path, **scripts: str) -> str:
    """Write executable stand-ins into `bin_dir`; a PATH that finds them first."""
    bin_dir.mkdir(exist_ok=True)
    for name, text in scripts.items():
        path = bin_dir / name.replace("_", "-")
        path.write_text(text)
        path.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture
def marker() -> str:
    """A word unique to the test, in its group names and its children's command lines."""
    return f"memtest-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def limit(marker, monkeypatch):
    """resource_limit() with a short grace; no group or child of the test may outlive it."""
    monkeypatch.delenv(cgroups.BACKEND_ENV, raising=False)  # each test picks its own
    groups = []

    @contextlib.contextmanager
    def open_limit(limit_mb: float, **kwargs):
        kwargs.setdefault("term_grace_seconds", 1.0)
        with resource_limit(limit_mb, name_prefix=marker, **kwargs) as group:
            groups.append(group)
            yield group

    yield open_limit
    stragglers = processes_marked(marker)
    # Memory and CPU groups alike, in whichever tree this machine's backend made them.
    leftovers = cgroups.existing_groups(marker) + [
        path
        for group in groups
        if isinstance(group, CgroupDirGroup)
        for path in group.directory.parent.glob(f"{marker}-*")
    ]
    # Clean up before failing, so one broken test cannot break the next.
    for process in stragglers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(stragglers, timeout=5)
    for path in sorted(set(leftovers)):
        with contextlib.suppress(OSError):
            path.rmdir()
    assert not stragglers and not leftovers


@pytest.mark.slow
def test_a_child_within_the_limit_runs_and_its_peak_is_the_kernels(limit, marker):
    with limit(512) as group:
        assert group.enforced and group.backend in ENFORCING
        process = group.popen(allocate(100, marker))
        assert process.wait(timeout=30) == 0
        assert 100 <= group.peak_mb() < 200
        assert group.oom_kills() == 0 and group.failcnt() == 0
    assert not group.directory.exists()
    assert group.peak_mb() >= 100, "the last figures stay readable after the group is gone"
    with pytest.raises(MemoryGroupError, match="is closed"):
        group.popen(["true"])


@pytest.mark.slow
def test_a_file_evicted_from_the_page_cache_is_charged_to_the_group_that_maps_it(
    limit, marker, tmp_path
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
    with limit(512) as group:
        assert group.popen([sys.executable, "-c", reader, str(model), marker]).wait(30) == 0
        warm_peak = group.peak_mb()
    cgroups.evict_from_page_cache(model)
    with limit(512) as group:
        assert group.popen([sys.executable, "-c", reader, str(model), marker]).wait(30) == 0
        evicted_peak = group.peak_mb()
    assert warm_peak < 40 and evicted_peak >= warm_peak + 75


@pytest.mark.slow
def test_a_child_over_the_limit_is_oom_killed_and_counted(limit, marker):
    with limit(256) as group:
        process = group.popen(allocate(700, marker))
        assert process.wait(timeout=30) == -signal.SIGKILL
        assert group.oom_kills() >= 1 and group.failcnt() >= 1
        assert 0.9 * 256 <= group.peak_mb() <= 257
    assert not group.directory.exists()


@pytest.mark.slow
def test_processes_started_in_one_group_share_its_limit(limit, marker):
    with limit(256) as group:
        children = [group.popen(allocate(180, marker, hold_seconds=1.5)) for _ in range(2)]
        assert sorted(child.wait(timeout=30) for child in children) == [-signal.SIGKILL, 0]
        assert group.oom_kills() == 1


@pytest.mark.slow
def test_a_shell_command_and_its_children_run_in_the_group_and_die_with_it(limit, marker):
    with limit(512) as group:
        shell = group.popen(f"{sys.executable} -c 'import time; time.sleep(60)' {marker} & wait")
        deadline = time.monotonic() + 5
        while len(group.pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = group.pids()
        assert shell.pid in pids and len(pids) == 2
    assert shell.returncode == -signal.SIGTERM
    assert not any(is_live(pid) for pid in pids)


@pytest.mark.slow
def test_an_exception_inside_the_block_still_kills_and_removes(limit, marker):
    with pytest.raises(RuntimeError, match="the caller failed"), limit(512) as group:
        process = group.popen(allocate(10, marker, hold_seconds=60))
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
def test_ctrl_c_inside_the_block_still_kills_and_removes(limit, marker, ctrl_c_raises):
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), limit(512) as group:
        process = group.popen(allocate(10, marker, hold_seconds=60))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the KeyboardInterrupt lands here
    assert process.returncode == -signal.SIGTERM
    assert not group.directory.exists()
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.slow
def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(limit, marker):
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    with limit(512, term_grace_seconds=1.0) as group:
        process = group.popen([sys.executable, "-c", stubborn, marker], stdout=subprocess.PIPE)
        assert process.stdout.readline() == b"ready\n"
        leaving = time.monotonic()
    # The grace was given (a busy machine only lengthens it), and the child was killed rather
    # than waited for: left alone it would sleep 60 s and exit 0.
    assert time.monotonic() - leaving >= 1.0
    assert process.returncode == -signal.SIGKILL
    process.stdout.close()


@pytest.mark.slow
def test_without_a_cgroup_the_peak_is_sampled_and_not_enforced(limit, marker, caplog):
    with caplog.at_level(logging.WARNING), limit(512, backend="none") as group:
        assert not group.enforced and group.backend == "none"
        process = group.popen(allocate(100, marker, hold_seconds=0.6))
        assert process.wait(timeout=30) == 0
        assert 100 <= group.peak_mb() < 250
        assert group.oom_kills() == 0 and group.failcnt() == 0
    assert "512 MB memory limit is NOT enforced" in caplog.text


@pytest.mark.slow
def test_the_backend_can_be_forced_from_the_environment(limit, monkeypatch):
    monkeypatch.setenv("MEMORY_CGROUP_BACKEND", "none")
    with limit(64) as group:
        assert group.backend == "none"


@pytest.mark.slow
def test_a_process_that_is_not_root_joins_through_sudo(limit, marker, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_tools(tmp_path / "bin", sudo=FAKE_SUDO))
    with limit(512, cpu_share=0.5) as group:
        assert isinstance(group, CgroupDirGroup), "every enforcing backend is a cgroup directory"
        assert group.cpu_enforced, group.cpu_note
        group.join_with_sudo = True  # so it joins the memory and the CPU group through sudo
        process = group.popen(allocate(100, marker, hold_seconds=1))
        deadline = time.monotonic() + 5
        while process.pid not in group.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.pid in group.pids()
        assert process.wait(timeout=30) == 0
        assert group.peak_mb() >= 100
        running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
        group.join(running.pid)  # a running process joins through sudo as well
        assert running.pid in group.pids()
    assert running.wait(timeout=5) == -signal.SIGTERM


def group_parent_and_hierarchy(limit) -> tuple[Path, Path]:
    """Where this machine's own backend makes memory groups, and its hierarchy's root."""
    with limit(16) as group:
        parent = group.directory.parent
    v2 = (common.CGROUP_ROOT / "cgroup.controllers").exists()
    return parent, common.CGROUP_ROOT if v2 else common.V1_MEMORY_ROOT


@pytest.mark.slow
@pytest.mark.parametrize("limit_mb", [512, None])
def test_a_systemd_scope_holds_the_group_until_the_block_ends(
    limit, marker, tmp_path, monkeypatch, limit_mb
):
    parent, hierarchy = group_parent_and_hierarchy(limit)
    tools = {"systemd_run": FAKE_SYSTEMD_RUN, "systemctl": FAKE_SYSTEMCTL}
    monkeypatch.setenv("PATH", fake_tools(tmp_path / "bin", **tools))
    monkeypatch.setenv("FAKE_SYSTEMD_ROOT", str(hierarchy))
    monkeypatch.setenv("FAKE_SYSTEMD_PARENT", str(parent))
    monkeypatch.setenv("FAKE_CPU_ROOT", str(tmp_path / "cpu"))
    monkeypatch.setattr(common, "V1_CPU_ROOT", tmp_path / "cpu")
    monkeypatch.setattr(common, "SYSTEMD_RUNTIME_DIR", tmp_path)
    with limit(limit_mb, cpu_share=0.5) as group:  # None: a CPU-only scope, memory counted
        assert group.backend == "systemd-run" and group.directory.name.endswith(".scope")
        assert group.cpu_enforced, group.cpu_note
        assert group.pids() == [], "the scope's holder is not one of the group's processes"
        process = group.popen(allocate(100, marker))
        assert process.wait(timeout=30) == 0
        assert group.peak_mb() >= 100 and group.oom_kills() == 0
    assert not group.directory.exists()


@pytest.mark.slow
def test_a_cpu_share_holds_a_busy_child_to_its_quota(limit, marker):
    # One second of wall time spinning: CPU over wall is about 1 unconfined. The quota is a
    # ceiling (0.1 CPU per 100 ms period), so a busy machine can only lower the ratio.
    spin = (
        "import time; cpu, start = time.process_time(), time.monotonic()\n"
        "while time.monotonic() < start + 1.0: pass\n"
        "print(time.process_time() - cpu, time.monotonic() - start)"
    )
    with limit(512, cpu_share=0.1) as group:
        assert group.cpu_enforced, group.cpu_note
        group.prioritise_cpu()  # first in line for its quota, however busy the host
        process = group.popen([sys.executable, "-c", spin, marker], stdout=subprocess.PIPE)
        cpu_seconds, wall_seconds = map(float, process.communicate(timeout=60)[0].split())
        throttled_periods, throttled_seconds = group.cpu_throttling()
    assert cpu_seconds / wall_seconds <= 2 * 0.1, (cpu_seconds, wall_seconds)
    assert throttled_periods > 0 and throttled_seconds > 0, "the kernel says it throttled"
    assert group.cpu_throttling() == (throttled_periods, throttled_seconds), "kept after close"


@pytest.mark.slow
def test_the_group_counts_its_cpu_in_the_kernels_accounting_and_its_wait_for_a_cpu(limit, marker):
    # 0.3 CPU-seconds of work: the kernel charges them to the group, whatever the host does.
    burn = "import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    with limit(512) as group:
        prioritised = group.prioritise_cpu()
        process = group.popen([sys.executable, "-c", burn, marker])
        assert process.wait(timeout=60) == 0
        used, waited = group.cpu_usage_seconds(), group.cpu_wait_seconds()
    assert 0.3 <= used < 0.3 + 1.0, "the work plus Python's start, counted after the exit"
    if group.backend in ("cgroup-v1", "cgroup-v2"):
        assert group.cpu_accounting in ("cpuacct.usage", "cpu.stat") and prioritised
        assert waited is not None and waited >= 0.0


def wait_for_children(pid: int, count: int) -> list[int]:
    """The pids of `pid`'s children once it has `count` of them (5 s at most)."""
    deadline = time.monotonic() + 5
    while len(children := psutil.Process(pid).children()) < count:
        assert time.monotonic() < deadline, f"{pid} did not start {count} children"
        time.sleep(0.05)
    return [child.pid for child in children]


@pytest.mark.slow
@pytest.mark.parametrize("backend", [None, "none"])
def test_a_running_process_and_its_children_join_the_group_and_stop_with_it(limit, marker, backend):
    sleeper = f"{sys.executable} -c 'import time; time.sleep(60)' {marker} & wait"
    shell = subprocess.Popen(["bash", "-c", sleeper, marker], start_new_session=True)
    try:
        (child,) = wait_for_children(shell.pid, 1)
        with limit(512, backend=backend) as group:
            group.join(shell.pid)
            assert sorted(group.pids()) == sorted([shell.pid, child])
        assert shell.wait(timeout=5) == -signal.SIGTERM
        assert not is_live(child)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()


@pytest.mark.slow
def test_a_cpu_only_group_holds_a_process_that_joins_it_to_its_share(limit, marker):
    spin = "import time; end = time.monotonic() + 30\nwhile time.monotonic() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin, marker])
    try:
        with limit(None, cpu_share=0.1) as group:
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


def test_a_process_that_is_not_running_cannot_join(limit):
    finished = subprocess.Popen(["true"])
    finished.wait()
    with limit(64, backend="none") as group, pytest.raises(MemoryGroupError, match="not running"):
        group.join(finished.pid)


def kernel_like_mkdir(directory: Path, settings: dict, required: tuple) -> None:
    """What the kernel does on mkdir in a v2 tree: the group's files appear, settings land."""
    directory.mkdir()
    for name in ("cgroup.procs", "memory.peak", "memory.current", "memory.events", "cpu.stat"):
        (directory / name).write_text("0\n")
    for name, value in settings.items():
        (directory / name.rstrip("?")).write_text(value)


@pytest.mark.parametrize(
    ("delegated", "cpu_enforced"), [("cpu memory pids", True), ("memory pids", False)]
)
def test_cgroup_v2_writes_memory_max_and_cpu_max_where_delegated(
    tmp_path, monkeypatch, delegated, cpu_enforced
):
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text(delegated + "\n")
    monkeypatch.setattr(common, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cgroup_v2, "own_group", lambda controller: "/")
    monkeypatch.setattr(cgroup_v2, "make_group_dir", kernel_like_mkdir)
    group = CgroupV2Group.create(512, "v2", 1.0, cpu_share=0.1)
    assert (tmp_path / "v2" / "memory.max").read_text() == str(512 * 2**20)
    assert group.cpu_enforced is cpu_enforced
    if cpu_enforced:
        assert (tmp_path / "v2" / "cpu.max").read_text() == "10000 100000"
    else:
        assert not (tmp_path / "v2" / "cpu.max").exists()
        assert "does not delegate the cpu controller" in group.cpu_note


def test_a_cpu_only_cgroup_v2_group_leaves_memory_max_alone(tmp_path, monkeypatch):
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    monkeypatch.setattr(common, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cgroup_v2, "own_group", lambda controller: "/")
    monkeypatch.setattr(cgroup_v2, "make_group_dir", kernel_like_mkdir)
    group = CgroupV2Group.create(None, "v2", 1.0, cpu_share=0.1)
    assert group.cpu_enforced and group.limit_mb is None
    assert (tmp_path / "v2" / "cpu.max").read_text() == "10000 100000"
    assert not (tmp_path / "v2" / "memory.max").exists(), "the kernel's default is max"


def test_throttling_is_read_from_cpu_stat_in_either_version(tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "cpu.stat").write_text(
        "nr_periods 40\nnr_throttled 30\nthrottled_time 2500000000\n"
    )
    group_v1 = CgroupV1Group(512, "v1", 1.0, tmp_path, version=1, cpu_directory=tmp_path / "v1")
    assert group_v1.cpu_throttling() == (30, 2.5)
    (tmp_path / "cpu.stat").write_text(
        "usage_usec 9\nnr_periods 40\nnr_throttled 7\nthrottled_usec 1500000\n"
    )
    assert CgroupV2Group(512, "v2", 1.0, tmp_path, version=2).cpu_throttling() == (7, 1.5)


def test_when_no_cgroup_can_be_made_it_falls_back_to_sampling_and_says_why(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.delenv(cgroups.BACKEND_ENV, raising=False)
    monkeypatch.setattr(common, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(common, "V1_MEMORY_ROOT", tmp_path / "memory")
    monkeypatch.setattr(common, "SYSTEMD_RUNTIME_DIR", tmp_path / "no-systemd")
    with caplog.at_level(logging.WARNING), memory_limit(512, "fallback") as group:
        assert group.backend == "none"
    assert "cgroup-v1: no cgroup v1 memory controller is mounted" in caplog.text
    assert "systemd-run: systemd is not PID 1 here" in caplog.text


def test_a_forced_backend_that_cannot_work_here_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "V1_MEMORY_ROOT", tmp_path)
    with pytest.raises(MemoryGroupError, match="cgroup-v1: no cgroup v1 memory controller"):
        open_group(64, "forced", backend="cgroup-v1")


def test_an_unknown_backend_is_named_in_the_error():
    with pytest.raises(MemoryGroupError, match="'cgroup-v9' is unknown"):
        open_group(64, "bad", backend="cgroup-v9")


def test_cgroup_v2_needs_a_subtree_that_delegates_memory(tmp_path, monkeypatch):
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu pids\n")
    monkeypatch.setattr(common, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cgroup_v2, "own_group", lambda controller: "/")
    with pytest.raises(MemoryGroupError, match="do not delegate the memory controller"):
        CgroupV2Group.create(64, "v2", 1.0)
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    with pytest.raises(MemoryGroupError, match=r"this kernel has no memory\.peak"):
        CgroupV2Group.create(64, "v2", 1.0)  # a plain directory has no memory.peak
    assert not (tmp_path / "v2").exists()


def test_cgroup_v2_figures_come_from_memory_peak_and_memory_events(tmp_path):
    (tmp_path / "memory.peak").write_text(f"{256 * 2**20}\n")
    (tmp_path / "memory.current").write_text(f"{100 * 2**20}\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    group = CgroupV2Group(512, "v2", 1.0, tmp_path, version=2)
    assert (group.peak_mb(), group.usage_mb(), group.oom_kills(), group.failcnt()) == (
        256,
        100,
        1,
        7,
    )


def test_cgroup_v1_reads_the_same_figures_from_its_own_files(tmp_path):
    (tmp_path / "memory.max_usage_in_bytes").write_text(f"{256 * 2**20}\n")
    (tmp_path / "memory.usage_in_bytes").write_text(f"{100 * 2**20}\n")
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (tmp_path / "memory.failcnt").write_text("9\n")
    group = CgroupV1Group(512, "v1", 1.0, tmp_path, version=1)
    assert (group.peak_mb(), group.usage_mb(), group.oom_kills(), group.failcnt()) == (
        256,
        100,
        2,
        9,
    )


def test_workers_that_fit_leave_headroom_beside_the_fixed_cost():
    assert workers_that_fit(per_worker_mb=50, fixed_mb=40, budget_mb=512) == 8
    assert workers_that_fit(per_worker_mb=50, fixed_mb=40, budget_mb=512, headroom=1.0) == 9
    assert workers_that_fit(per_worker_mb=100, fixed_mb=500, budget_mb=512) == 0
    with pytest.raises(ValueError, match="must be positive"):
        workers_that_fit(per_worker_mb=0, fixed_mb=40, budget_mb=512)
