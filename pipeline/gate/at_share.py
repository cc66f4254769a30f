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
2.4 or 2.6 ms of CPU ends in one period or the next, so a 10% change in cost (two busy
processes beside the measure) moved its p95 from 103 to 192 ms. The steady-speed replay moves
by as much as the cost does, and the added period keeps it above the exact replay. A health
check's wait is judged on the same terms (`wall_seconds_at_steady_share`).
"""

import math
from collections import deque

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
    0.31 s here, where the exact rule gives 0.108 or 0.202 s)."""
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
