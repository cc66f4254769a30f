"""The machine a verdict was measured on, so a reader can tell a verdict from elsewhere."""

import datetime
import hashlib
import os
import platform
from pathlib import Path

MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_id() -> str:
    """A short hash of the OS's machine id (the hostname where there is none): not the id."""
    for path in MACHINE_ID_FILES:
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        if raw:
            return hashlib.sha256(raw.encode()).hexdigest()[:12]
    return hashlib.sha256(platform.node().encode()).hexdigest()[:12]


def this_machine(cgroup_backend: str) -> dict:
    """CPU model, cores, kernel, cgroup backend, machine id and the UTC time of measuring."""
    return {
        "id": machine_id(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count() or 1,
        "kernel": platform.release(),
        "cgroup_backend": cgroup_backend,
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def measured_elsewhere(verdict: dict) -> str | None:
    """Why a verdict was not measured on this machine (None when it was, or it does not say)."""
    machine = verdict.get("machine")
    if not isinstance(machine, dict):
        return "it does not say which machine measured it" if verdict.get("measures") else None
    if machine.get("id") == machine_id():
        return None
    return (
        f"measured on another machine ({machine.get('cpu_model')}, {machine.get('cores')} "
        f"cores, {machine.get('cgroup_backend')}) at {machine.get('measured_at')}"
    )
