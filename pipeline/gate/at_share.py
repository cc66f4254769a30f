"""What a measured CPU cost means at a plan's CPU share: the wall times the gate judges.

The kernel's CFS quota gives a group `share` x 100 ms of CPU in every 100 ms period and then
stops it until the next period. Given what each request costs (measured unthrottled, one at a
time) the gate replays its own load through that rule: `concurrency` clients in a closed loop,
one request per worker at a time in arrival order (the inference slot), health checks served
ahead of waiting predictions as soon as the request in hand is done (the gevent worker answers
a health check between two predictions). The replay is deterministic: the same costs give the
same percentiles, however busy the host was.

The gate judges `replay_at_share`: the plan's share as a steady speed, plus the longest wait
one throttled period adds. The exact CFS replay steps by whole periods: a request that costs
2.4 or 2.6 ms of CPU ends in one period or the next, so a change in cost as small as a busy
host makes can move its p95 by a whole period. The steady-speed replay moves by as much as
the cost does, and the added period keeps it above the exact replay. A health
check's wait is judged on the same terms (`wall_seconds_at_steady_share`).

`costs_at_share` applies these to what pipeline.gate.cost measured: the cheapest cold start,
the gate's load replayed on each window of per-request costs, and each health probe's wait.
"""

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from pipeline.gate.cost import ServiceCost, least_batch_cost
from pipeline.params import GateParams

PERIOD_SECONDS = 0.1  # the kernel's CFS period (pipeline.cgroups.common.CFS_PERIOD_US)
STEP_SECONDS = 0.0005


def wall_seconds_at_share(cpu_seconds: float, share: float) -> float:
    """Wall time to spend `cpu_seconds` on one core under a quota of `share` CPUs per period:
    whole periods of `share` x 100 ms each, then what is left, early in the last one."""
    usable = min(share, 1.0)
    if usable >= 1.0 or cpu_seconds <= 0:
        return max(cpu_seconds, 0.0)
    per_period = usable * PERIOD_SECONDS
    whole_periods = max(0, math.ceil(cpu_seconds / per_period - 1e-9) - 1)
    return whole_periods * PERIOD_SECONDS + (cpu_seconds - whole_periods * per_period)


def longest_stop_seconds(share: float) -> float:
    """The longest stretch a quota of `share` CPUs stops a group for: the rest of a period
    after its quota is spent ((1 - share) x the period; none at a whole CPU or more)."""
    return max(0.0, 1.0 - min(share, 1.0)) * PERIOD_SECONDS


def wall_seconds_at_steady_share(cpu_seconds: float, share: float) -> float:
    """Wall time to spend `cpu_seconds` at `share` taken as a steady speed, after the longest
    stop a quota makes: at least wall_seconds_at_share from any point of a period, and it
    moves with the CPU, never by a whole period (0.018 or 0.022 CPU-s at 0.1 CPU: 0.27 or
    0.31 s, where the exact rule from a period's start gives 0.108 or 0.202 s)."""
    if cpu_seconds <= 0:
        return 0.0
    return cpu_seconds / min(share, 1.0) + longest_stop_seconds(share)


def replay_load(
    request_costs: list[float],
    health_cost: float,
    *,
    share: float,
    workers: int,
    clients: int,
    requests_total: int,
    health_interval: float,
) -> dict:
    """Latencies (ms) of `requests_total` predictions by `clients` closed-loop clients, the
    health checks' latencies (s) every `health_interval`, and the rate (req/s) at `share`."""
    quota = share * PERIOD_SECONDS
    predictions = deque([0.0, request_costs[i % len(request_costs)], False] for i in range(clients))
    health: deque = deque()
    in_hand: list[list | None] = [None] * workers  # [arrival, CPU still needed, is a health check]
    latencies, health_latencies = [], []
    now, budget, next_period, next_health = 0.0, quota, PERIOD_SECONDS, health_interval
    sent = clients
    while len(latencies) < requests_total:
        if now >= next_period - 1e-12:
            budget, next_period = quota, next_period + PERIOD_SECONDS
        if now >= next_health - 1e-12:
            health.append([next_health, health_cost, True])
            next_health += health_interval
        for index, job in enumerate(in_hand):
            if job is None and (health or predictions):
                in_hand[index] = (health or predictions).popleft()
        busy = [job for job in in_hand if job is not None]
        if not busy:
            now = min(next_health, next_period)
            continue
        if budget <= 1e-12:
            now = next_period  # throttled until the next period
            continue
        step = min(
            STEP_SECONDS,
            budget / len(busy),
            min(job[1] for job in busy),
            next_health - now if next_health > now else STEP_SECONDS,
        )
        now += step
        budget -= step * len(busy)
        for index, job in enumerate(in_hand):
            if job is None:
                continue
            job[1] -= step
            if job[1] > 1e-12:
                continue
            if job[2]:
                health_latencies.append(now - job[0])
            else:
                latencies.append((now - job[0]) * 1000)
                if sent < requests_total:
                    predictions.append([now, request_costs[sent % len(request_costs)], False])
                    sent += 1
            in_hand[index] = None
    return {
        "latencies_ms": latencies,
        "health_latencies_s": health_latencies,
        "throughput_rps": requests_total / now if now else 0.0,
    }


def replay_at_share(
    request_costs: list[float], health_cost: float, *, share: float, **load
) -> dict:
    """replay_load's figures with the share as a steady speed: each prediction's latency also
    carries the longest stretch a quota stops a group for ((1 - share) x the period), so it
    bounds the exact replay from above and moves with the cost, never by a whole period."""
    speed = min(share, 1.0)
    if speed >= 1.0:
        return replay_load(request_costs, health_cost, share=share, **load)
    replay = replay_load(
        [cost / speed for cost in request_costs], health_cost / speed, share=1.0, **load
    )
    stopped_ms = longest_stop_seconds(share) * 1000
    replay["latencies_ms"] = [ms + stopped_ms for ms in replay["latencies_ms"]]
    return replay


# Health under saturation is judged at this percentile of the probes: a round's slowest probe
# lands on a chance pile-up of bodies and moves several-fold from run to run, where the 99th
# percentile of two rounds of probes stays steady, quiet or beside busy processes.
HEALTH_PERCENTILE = 99


def percentile(values: list[float], percent: float) -> float:
    return float(np.percentile(values, percent)) if values else float("inf")


@dataclass(frozen=True)
class AtShare:
    """The measured costs as wall times at a plan's share: the cheapest cold start; the gate's
    load replayed on each window of per-request costs (none when no request was timed); the
    health check under saturation; and the CPU an answer costs at the sustainable rate."""

    cold_start_seconds: float
    replays: list[dict]
    health_seconds: float
    answer_cpu_seconds: float | None

    def least_latency_ms(self, percent: float) -> float:
        """A latency percentile, the least over the windows' replays: the host's interference
        adds outliers to the costs, and the window it disturbed least holds the fewest, while
        a tail of the service's own shows in every window, so the least still carries it."""
        return min(percentile(replay["latencies_ms"], percent) for replay in self.replays)


def costs_at_share(cost: ServiceCost, settings: GateParams, share: float, workers: int) -> AtShare:
    """What `cost` means at `share` for a service of `workers` workers."""
    cold_start = wall_seconds_at_share(cost.cold_start_cpu_seconds[cost.cheapest_start], share)
    if not cost.request_cpu_seconds:
        return AtShare(cold_start, [], 0.0, None)
    mean_cost = least_batch_cost(cost.request_cpu_seconds, settings.cost_batch_requests)
    replays = [
        replay_window(window, mean_cost, cost, settings, share, workers)
        for window in cost.replayed_windows or [cost.request_cpu_seconds]
    ]
    health = health_at_share(cost, replays, share, settings.health_probe_timeout_seconds)
    # Past what the plan clears, requests queue and every invoke is a full batch: an answer
    # costs its saturated figure then (its one-at-a-time figure where that is unknown).
    answer = cost.saturated_cpu_seconds if cost.saturated_cpu_seconds is not None else mean_cost
    return AtShare(cold_start, replays, health, answer)


def replay_window(
    window: list[float],
    mean_cost: float,
    cost: ServiceCost,
    settings: GateParams,
    share: float,
    workers: int,
) -> dict:
    """The gate's load replayed at `share` on one window's per-request costs, scaled so that
    their mean is `mean_cost` (the cheapest window's least batch): the level from the cheapest
    window, the spread of costs around it from this one."""
    scale = mean_cost / float(np.mean(window))
    return replay_at_share(
        [c * scale for c in window],
        percentile(cost.health_cpu_seconds, 50) if cost.health_cpu_seconds else 0.0,
        share=share,
        workers=max(1, workers),
        clients=settings.concurrency,
        # Every measured cost at least once: a replay of fewer requests than were timed would
        # take only the first ones.
        requests_total=max(settings.requests, len(window)),
        health_interval=settings.health_probe_interval_seconds,
    )


def health_at_share(cost: ServiceCost, replays: list[dict], share: float, timeout: float) -> float:
    """The 99th percentile health check under saturation at `share`.

    Each probe of every round (the typical load's and each worst-case mix's) waited for the
    CPU the service spent meanwhile, taken at the share as a steady speed after the longest
    stop a quota makes, and for whatever else held it (a lock or a sleep, which no share
    speeds up: its wall time beyond that CPU). The probes run at the highest priority, so a
    busy host adds little to the latter. A probe that failed unthrottled makes the figure the
    whole probe timeout, as Render counts it. The replays' slowest health check where no
    probe was timed.
    """
    if cost.health_probe_failures:
        return timeout
    probes = cost.health_probes
    if not probes:
        return max((s for replay in replays for s in replay["health_latencies_s"]), default=0.0)
    return percentile(
        [max(0.0, wall - cpu) + wall_seconds_at_steady_share(cpu, share) for wall, cpu in probes],
        HEALTH_PERCENTILE,
    )
