"""Refuse in seconds what cannot fit: the bundle plus the lite runtime's own baseline.

A model too big for the plan would otherwise boot for a minute inside the limit, thrash, and
fail as "not healthy"; its size alone says so before the service starts. The baseline is
measured here, in a group of its own: a process that imports numpy and the runtime the
service will use, with the runtime's libraries evicted first so it pays for them as the
service would (and evicted again after, so the service pays for them too).
"""

import subprocess
import sys
from pathlib import Path

from pipeline.cgroups import distribution_libraries, evict_from_page_cache, memory_limit
from pipeline.params import GateParams
from pipeline.paths import REPO_ROOT
from service.errors import Refusal
from service.runtime import RUNTIMES

BASELINE_PROBE = (
    "import numpy; from service.runtime import select_runtime; select_runtime().interpreter_class"
)
PROBE_TIMEOUT_SECONDS = 60


class BundleTooLarge(Refusal):
    """The bundle and the runtime cannot fit in the budget, whatever the service does."""


def refuse_what_cannot_fit(
    bundle_dir: Path, settings: GateParams, env: dict[str, str]
) -> dict[str, float]:
    """The bundle's size and the runtime's baseline; BundleTooLarge when they exceed the plan's
    budget (its max_peak_memory_mb)."""
    plan_name, plan = settings.plan, settings.target_plan
    budget_mb = plan.max_peak_memory_mb
    size_mb = bundle_mb(bundle_dir)
    baseline = runtime_baseline_mb(plan.memory_mb, env)
    figures = {"bundle_mb": round(size_mb, 1), "runtime_baseline_mb": round(baseline, 1)}
    if size_mb + baseline > budget_mb:
        raise BundleTooLarge(
            f"the model bundle ({size_mb:.1f} MB) plus the lite runtime's measured baseline "
            f"({baseline:.1f} MB) is {size_mb + baseline:.1f} MB, over the "
            f"{budget_mb} MB budget of plan {plan_name} ({plan.memory_mb} MB, "
            f"gate.plans.{plan_name}.max_peak_memory_mb): the service cannot fit; "
            "choose a plan with more memory (gate.plan) or a smaller model "
            "(convert.quantization: dynamic)"
        )
    return figures


def bundle_mb(bundle_dir: Path) -> float:
    """What the bundle's files weigh: the service maps or reads every byte of them."""
    return sum(f.stat().st_size for f in bundle_dir.iterdir() if f.is_file()) / 2**20


def runtime_baseline_mb(limit_mb: float, env: dict[str, str]) -> float:
    """The memory group peak of a process that only imports numpy and the lite runtime."""
    libraries = lite_runtime_libraries()
    evict_from_page_cache(*libraries)
    with memory_limit(limit_mb, name_prefix="gate-baseline") as group:
        probe = group.popen(
            [sys.executable, "-c", BASELINE_PROBE],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _, error = probe.communicate(timeout=PROBE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            probe.kill()
            _, error = probe.communicate()
        if probe.returncode != 0:
            said = error.decode(errors="replace").strip().splitlines()
            raise BundleTooLarge(
                "the lite runtime cannot even be imported within the plan's memory: "
                + (said[-1] if said else f"exit code {probe.returncode}")
            )
        baseline = group.peak_mb()
    evict_from_page_cache(*libraries)
    return baseline


def lite_runtime_libraries() -> list[Path]:
    """The shared libraries of every installed lite runtime, for evict_from_page_cache."""
    return distribution_libraries(*(name for name, _ in RUNTIMES))
