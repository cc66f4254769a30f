"""params.yaml's `gate` section: the plans, and the gate's limits, budgets and repeat counts.

See params.yaml itself for what each key means.
"""

from dataclasses import dataclass, field
from typing import Any

from pipeline.params.reading import at_least, more_than

# What a variable of `gate.service_env` may hold; the service gets it as text.
EnvValue = str | float | bool


@dataclass(frozen=True)
class Plan:
    """One Render instance type: its memory, CPU share and price, and the gate's budget on it."""

    memory_mb: float = at_least(1)
    cpu_share: float = at_least(0.001)
    price_usd_month: float = at_least(0)
    max_instances: int = at_least(1)
    max_peak_memory_mb: float = at_least(1)

    def row(self, name: str) -> dict[str, Any]:
        """The plan as the gate's reports name it."""
        return {
            "name": name,
            "memory_mb": self.memory_mb,
            "cpu_share": self.cpu_share,
            "price_usd_month": self.price_usd_month,
        }


@dataclass(frozen=True)
class GateParams:
    plan: str
    plans: dict[str, Plan]
    require_enforced: bool
    cold_start_deadline_seconds: float = more_than(0)
    max_cold_start_seconds: float = more_than(0)
    requests: int = at_least(1)
    concurrency: int = at_least(1)
    request_timeout_seconds: float = more_than(0)
    max_probability_diff: float = at_least(0)
    max_latency_p95_ms: float = more_than(0)
    max_latency_p99_ms: float = more_than(0)
    min_throughput_rps: float = at_least(0)
    min_sustainable_rps: float = at_least(0)
    max_health_latency_seconds: float = more_than(0)
    health_probe_interval_seconds: float = more_than(0)
    health_probe_timeout_seconds: float = more_than(0)
    cost_cold_starts: int = at_least(1)
    cost_max_cold_starts: int = at_least(1)
    cost_requests: int = at_least(1)
    cost_health_requests: int = at_least(1)
    cost_batch_requests: int = at_least(1)
    cost_saturation_clients: int = at_least(1)
    cost_saturation_requests: int = at_least(1)
    cost_saturation_rounds: int = at_least(1)
    cost_health_probe_interval_seconds: float = more_than(0)
    cost_worst_case_rounds: int = at_least(0)
    max_phase_wait_share: float = at_least(0, at_most=1)
    max_phase_repeats: int = at_least(0)
    worst_case_timeout_seconds: float = more_than(0)
    worst_case_max_concurrency: int = at_least(1)
    target_rps: float = more_than(0)
    plan_fit_utilisation: float = more_than(0, at_most=1)
    service_env: dict[str, EnvValue] = field(default_factory=dict)

    @property
    def target_plan(self) -> Plan:
        """The row of `plans` that `plan` names (params.yaml's own check makes sure it is one)."""
        return self.plans[self.plan]
