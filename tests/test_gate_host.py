"""The host beside a timing phase: the keepers that stop its CPUs from halting while the gate
measures a cold start, left out of the host's figures."""

import os
import signal
import subprocess
import sys
import time

from pipeline.gate import host
from pipeline.gate.host import (
    Reading,
    cpus_kept_awake,
    interference,
    keepers_cpu_ticks,
    keepers_running,
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def keeper_pids() -> list[int]:
    return [keeper.pid for keeper in host._running]


def test_one_keeper_per_cpu_at_the_lowest_priority_pinned_to_it_and_gone_after_the_block():
    cpus = sorted(os.sched_getaffinity(0))
    with cpus_kept_awake() as count:
        pids = keeper_pids()
        assert count == len(cpus) == len(pids) == keepers_running()
        assert [os.sched_getscheduler(pid) for pid in pids] == [os.SCHED_IDLE] * len(cpus)
        assert [sorted(os.sched_getaffinity(pid)) for pid in pids] == [[cpu] for cpu in cpus]
    assert keepers_running() == 0
    assert not any(alive(pid) for pid in pids)


def test_a_phase_with_keepers_leaves_them_out_of_the_host_figures():
    with cpus_kept_awake() as count:
        ticks = keepers_cpu_ticks()
        start = Reading.now(None)
        time.sleep(0.5)
        figures = interference(start, Reading.now(None), max_wait_share=0.3)
        assert keepers_cpu_ticks() > ticks, "the keepers ran"
    # Host-wide PSI counts a keeper waiting for its CPU: no figure rather than a wrong one.
    assert figures["host_cpu_wait_share"] is None
    assert figures["cpus_kept_awake"] == count


def test_keepers_of_a_gate_killed_with_sigkill_end_with_it():
    script = (
        "from pipeline.gate.host import cpus_kept_awake, _running\n"
        "import time\n"
        "with cpus_kept_awake():\n"
        "    print(' '.join(str(k.pid) for k in _running), flush=True)\n"
        "    time.sleep(60)\n"
    )
    gate = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(pid) for pid in gate.stdout.readline().split()]
    assert pids and all(alive(pid) for pid in pids)
    gate.send_signal(signal.SIGKILL)
    gate.wait()
    gate.stdout.close()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids), "a keeper outlived its gate"
