"""The backends: forced from the environment, joined through sudo, a systemd scope, cgroup v2
and v1 files, and the fallback to sampling that says why.

Where a backend cannot run here, its interface is a file-level stand-in: a directory laid out
as the kernel lays out a v2 group, or scripts that answer as systemd-run and systemctl do.
"""

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cgroup_helpers import (
    FAKE_SUDO,
    FAKE_SYSTEMCTL,
    FAKE_SYSTEMD_RUN,
    allocate,
    fake_tools,
)

from pipeline import cgroups
from pipeline.cgroups import (
    CgroupDirGroup,
    CgroupV1Group,
    CgroupV2Group,
    MemoryGroupError,
    common,
    memory_limit,
    open_group,
    workers_that_fit,
)
from pipeline.cgroups import v2 as cgroup_v2


@pytest.mark.slow
def test_the_backend_can_be_forced_from_the_environment(cgroup_limit, monkeypatch):
    monkeypatch.setenv("MEMORY_CGROUP_BACKEND", "none")
    with cgroup_limit(64) as group:
        assert group.backend == "none"


@pytest.mark.slow
def test_a_process_that_is_not_root_joins_through_sudo(
    cgroup_limit, cgroup_marker, tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", fake_tools(tmp_path / "bin", sudo=FAKE_SUDO))
    with cgroup_limit(512, cpu_share=0.5) as group:
        assert isinstance(group, CgroupDirGroup), "every enforcing backend is a cgroup directory"
        assert group.cpu_enforced, group.cpu_note
        group.join_with_sudo = True  # so it joins the memory and the CPU group through sudo
        process = group.popen(allocate(100, cgroup_marker, hold_seconds=1))
        deadline = time.monotonic() + 5
        while process.pid not in group.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.pid in group.pids()
        assert process.wait(timeout=30) == 0
        assert group.peak_mb() >= 100
        running = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)", cgroup_marker]
        )
        group.join(running.pid)  # a running process joins through sudo as well
        assert running.pid in group.pids()
    assert running.wait(timeout=5) == -signal.SIGTERM


def group_parent_and_hierarchy(cgroup_limit) -> tuple[Path, Path]:
    """Where this machine's own backend makes memory groups, and its hierarchy's root."""
    with cgroup_limit(16) as group:
        parent = group.directory.parent
    v2 = (common.CGROUP_ROOT / "cgroup.controllers").exists()
    return parent, common.CGROUP_ROOT if v2 else common.V1_MEMORY_ROOT


@pytest.mark.slow
@pytest.mark.parametrize("limit_mb", [512, None])
def test_a_systemd_scope_holds_the_group_until_the_block_ends(
    cgroup_limit, cgroup_marker, tmp_path, monkeypatch, limit_mb
):
    parent, hierarchy = group_parent_and_hierarchy(cgroup_limit)
    tools = {"systemd_run": FAKE_SYSTEMD_RUN, "systemctl": FAKE_SYSTEMCTL}
    monkeypatch.setenv("PATH", fake_tools(tmp_path / "bin", **tools))
    monkeypatch.setenv("FAKE_SYSTEMD_ROOT", str(hierarchy))
    monkeypatch.setenv("FAKE_SYSTEMD_PARENT", str(parent))
    monkeypatch.setenv("FAKE_CPU_ROOT", str(tmp_path / "cpu"))
    monkeypatch.setattr(common, "V1_CPU_ROOT", tmp_path / "cpu")
    monkeypatch.setattr(common, "SYSTEMD_RUNTIME_DIR", tmp_path)
    with cgroup_limit(limit_mb, cpu_share=0.5) as group:  # None: a CPU-only scope, memory counted
        assert group.backend == "systemd-run" and group.directory.name.endswith(".scope")
        assert group.cpu_enforced, group.cpu_note
        assert group.pids() == [], "the scope's holder is not one of the group's processes"
        process = group.popen(allocate(100, cgroup_marker))
        assert process.wait(timeout=30) == 0
        assert group.peak_mb() >= 100 and group.oom_kills() == 0
    assert not group.directory.exists()


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
