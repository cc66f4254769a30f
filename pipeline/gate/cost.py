"""What the service costs in CPU, measured where the host's other work cannot move it much.

The service runs in the plan's memory limit with no CPU quota and a high CPU weight, so it
rarely waits for a core; the group's own accounting (cpuacct.usage, cpu.stat usage_usec) gives
the CPU-seconds it spent. A cold start's cost is the least of a few starts (gate.cost_cold_starts,
more while the cheapest was noisy, up to gate.cost_max_cold_starts, and the load's service's
own); each prediction's and each health check's cost is read one request at a time; and a
prediction's cost once more while more clients than the service batches at once keep its
queue full (the sustainable rate's cost: past what the plan clears, every invoke is a full
batch). Both are timed in every service the gate starts here, some seconds apart, and the
cheapest service counts: on one quiet host the least batch of one service's one-at-a-time
requests read 1.8 to 2.9 ms from one service to the next, and its saturated cost 1.3 to
1.8 ms. Under a 0.1 CPU quota the
same work costs 1x to 7x more CPU on a shared host (10 ms bursts on cold caches), and 25x to
100x in a bad hour (a prediction of 2.3 ms unthrottled took 60 to 230 ms of the group's CPU),
so the quota's wall times are reported beside these figures, not judged.
"""

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

from pipeline.cgroups import evict_from_page_cache, resource_limit
from pipeline.gate.awake import cpus_kept_awake, keepers_cpu_seconds
from pipeline.gate.interference import Reading, in_words, interference
from pipeline.gate.load import HealthProbe
from pipeline.gate.render_service import (
    RenderWebService,
    ServiceLimits,
    free_port,
    lite_runtime_libraries,
)
from pipeline.gate.run import (
    checked_load,
    log_tail,
    service_environment,
    worst_case_concurrency,
)
from pipeline.gate.watch import GateFailure, wait_until_healthy
from pipeline.gate.worst_case import drive_hostile, hostile_kinds


def least_batch_cost(costs: list[float], batch: int) -> float:
    """The least mean CPU per request over consecutive batches of `batch` requests: like the
    least of a few cold starts, the batch the host's other work disturbed least."""
    if len(costs) < 2 * batch:
        return float(np.mean(costs))
    usable = len(costs) // batch * batch
    return float(np.asarray(costs[:usable]).reshape(-1, batch).mean(axis=1).min())


@dataclass
class RequestWindow:
    """One service's predictions and health checks timed one at a time, then its predictions'
    least cost with the queue kept full, and each phase's interference."""

    predictions: list[float]
    checks: list[float]
    phase: dict
    saturated: float | None = None
    saturation_phase: dict = field(default_factory=dict)


@dataclass
class ServiceCost:
    """CPU-seconds the service spent, unthrottled, with each phase's interference."""

    cpu_accounting: str = ""
    prioritised: bool = False
    cold_start_cpu_seconds: list[float] = field(default_factory=list)
    cold_start_wall_seconds: list[float] = field(default_factory=list)
    cold_start_phases: list[dict] = field(default_factory=list)
    # The cheapest window's one-at-a-time costs, and each window's least batch (CPU-seconds).
    request_cpu_seconds: list[float] = field(default_factory=list)
    health_cpu_seconds: list[float] = field(default_factory=list)
    request_window_least_batches: list[float] = field(default_factory=list)
    # The predictions of every window the latency percentiles are replayed from (the quiet
    # ones where there are any; none: the cheapest window's alone).
    replayed_windows: list[list[float]] = field(default_factory=list)
    # Each health probe's (wall seconds, CPU-seconds the service spent meanwhile): one round
    # beside the typical load, then one per worst-case mix.
    health_probe_rounds: list[list[tuple[float, float]]] = field(default_factory=list)
    # Probes that timed out or got anything but 200, unthrottled: no quota explains those.
    health_probe_failures: list[str] = field(default_factory=list)
    requests_phase: dict = field(default_factory=dict)
    # CPU-seconds per answered prediction with the queue kept full (the cheapest service's,
    # and each service's), and that phase's noise.
    saturated_cpu_seconds: float | None = None
    saturated_cpu_seconds_by_service: list[float] = field(default_factory=list)
    saturation_phase: dict = field(default_factory=dict)
    noisy: list[str] = field(default_factory=list)
    # CPU the keepers spent while the costs were measured (pipeline.gate.awake).
    keeper_cpu_seconds: float = 0.0

    @property
    def health_probes(self) -> list[tuple[float, float]]:
        """Every round's probes, as one list."""
        return [probe for probes in self.health_probe_rounds for probe in probes]

    @property
    def cheapest_start(self) -> int:
        costs = self.cold_start_cpu_seconds
        return min(range(len(costs)), key=costs.__getitem__)


@contextlib.contextmanager
def _service(render: RenderWebService, settings: dict, plan: dict, model_dir: Path):
    """One fresh service in the plan's memory, unthrottled, first in line for a core, started
    with the host's CPUs kept awake (pipeline.gate.awake)."""
    port = free_port()
    env = service_environment(render, settings, port, model_dir)
    evict_from_page_cache(Path(env["MODEL_DIR"]), *lite_runtime_libraries())
    with (
        tempfile.TemporaryDirectory(prefix="gate-cost-") as log_dir,
        resource_limit(plan["memory_mb"], None, name_prefix="gate-cost") as group,
    ):
        prioritised = group.prioritise_cpu()
        # Where the service's own wait for CPU judges each phase: the host-wide one would
        # count the keepers.
        keep_awake = group.cpu_wait_seconds() is not None
        log_path = Path(log_dir) / "service.log"
        with open(log_path, "wb") as service_log:
            # Only while it starts: the cold start is where a quiet host's halted CPUs cost
            # the service more; one-at-a-time requests cost the same with keepers or without.
            with cpus_kept_awake() if keep_awake else contextlib.nullcontext():
                before = Reading.now(group)
                process = render.start_in(group, env, service_log)
                url = f"http://127.0.0.1:{port}"
                try:
                    wall = wait_until_healthy(
                        url, process, settings["cold_start_deadline_seconds"], before.at
                    )
                except GateFailure as failure:
                    service_log.flush()
                    tail = [line for line in log_tail(log_path) if line.strip()]
                    said = tail[-1] if tail else "none"
                    raise GateFailure(f"{failure} (service log: {said})") from None
                cpu = group.cpu_usage_seconds()
                phase = interference(before, Reading.now(group), settings["max_phase_wait_share"])
            yield (
                group,
                url,
                prioritised,
                cpu,
                wall,
                phase,
                ServiceLimits.of(render.start_command, env),
            )


def _timed_costs(group, session, send, count: int) -> list[float]:
    """The group's CPU-seconds for each of `count` requests sent one at a time."""
    costs = []
    for index in range(count):
        before = group.cpu_usage_seconds()
        send(session, index)
        costs.append(group.cpu_usage_seconds() - before)
    return costs


def _request_costs(group, url: str, settings: dict, expected) -> RequestWindow:
    """Per-prediction and per-health-check CPU, one request at a time, and the interference."""
    labels = len(expected.labels)

    def predict(session, index):
        sample = expected.samples[index % len(expected.samples)][None]
        response = session.post(
            f"{url}/api/predict/",
            params={"top_k": labels},
            data=sample.astype("<f4").tobytes(),
            headers={"Content-Type": "application/octet-stream"},
            timeout=settings["request_timeout_seconds"],
        )
        if response.status_code != 200:
            raise GateFailure(f"a prediction answered HTTP {response.status_code} unthrottled")

    def health(session, _):
        session.get(f"{url}/api/health/", timeout=settings["health_probe_timeout_seconds"])

    with requests.Session() as session:
        predict(session, 0)  # the first answer pays for lazy set-up: not a request's cost
        before = Reading.now(group)
        predictions = _timed_costs(group, session, predict, settings["cost_requests"])
        checks = _timed_costs(group, session, health, settings["cost_health_requests"])
        phase = interference(before, Reading.now(group), settings["max_phase_wait_share"])
    return RequestWindow(predictions, checks, phase)


def quiet_windows(windows: list[RequestWindow]) -> list[RequestWindow]:
    """The windows whose one-at-a-time phase the host left quiet; all of them if none was."""
    return [window for window in windows if not window.phase["noisy"]] or windows


def cheapest_window(windows: list[RequestWindow], batch: int) -> RequestWindow:
    """The window whose least batch cost least, among the quiet ones where there are any."""
    return min(
        quiet_windows(windows), key=lambda window: least_batch_cost(window.predictions, batch)
    )


def cheapest_saturation(windows: list[RequestWindow]) -> RequestWindow:
    """The window whose saturated cost was least, among those whose saturated phase was
    quiet where there are any."""
    measured = [window for window in windows if window.saturated is not None]
    quiet = [window for window in measured if not window.saturation_phase["noisy"]] or measured
    return min(quiet, key=lambda window: window.saturated)


def _unanswered(load, requests_total: int) -> None:
    """Unthrottled and first in line for a core, every request is answered in milliseconds:
    one that failed or timed out here is the service's fault, whatever the quota run saw."""
    unanswered = load.failures + load.timeouts
    if unanswered:
        raise GateFailure(
            f"{len(unanswered)} of {requests_total} predictions were not answered "
            f"unthrottled: {'; '.join(unanswered[:3])}"
        )


def _saturated_cost(group, url: str, settings: dict, expected) -> tuple[float, dict]:
    """CPU-seconds per answered prediction while gate.cost_saturation_clients clients, more
    than the service gathers into one invoke, keep its queue full; and the interference.

    Traffic past what the plan's CPU clears queues up whatever its clients do, so each invoke
    then runs a full batch: this is what an answer costs at the sustainable rate. A busy host
    delays some clients; with four times a batch of them the queue stays full all the same.
    One load of 400 takes about half a second, so a moment's disturbance can lift it by a
    third (1.72 against 1.31 ms seen): the figure is the least of
    gate.cost_saturation_rounds loads, as a cold start is the least of a few; and every
    service the gate starts here measures it again (pipeline.gate.cost.measure_cost).
    """
    requests_total = settings["cost_saturation_requests"]
    before, costs = Reading.now(group), []
    for _ in range(settings["cost_saturation_rounds"]):
        cpu_before = group.cpu_usage_seconds()
        load = checked_load(
            url,
            settings,
            expected,
            requests_total=requests_total,
            concurrency=settings["cost_saturation_clients"],
            label="cost: saturation unthrottled",
        )
        cpu = group.cpu_usage_seconds() - cpu_before
        _unanswered(load, requests_total)
        costs.append(cpu / len(load.latencies_ms))
    phase = interference(before, Reading.now(group), settings["max_phase_wait_share"])
    return min(costs), phase


def _service_costs(group, url: str, settings: dict, expected) -> RequestWindow:
    """One service's one-at-a-time costs, then its saturated cost."""
    window = _request_costs(group, url, settings, expected)
    window.saturated, window.saturation_phase = _saturated_cost(group, url, settings, expected)
    return window


def _health_waits(group, url: str, settings: dict, expected, limits) -> tuple[list, list]:
    """Each probe's wall time and the CPU the service spent meanwhile, round by round, and
    the probes that failed: beside the gate's typical load, then beside each of
    gate.cost_worst_case_rounds worst-case mixes (pipeline.gate.run sends both again under
    the quota)."""
    probe_settings = (
        settings["cost_health_probe_interval_seconds"],
        settings["health_probe_timeout_seconds"],
    )
    rounds, failures = [], []
    with HealthProbe(url, *probe_settings, accounting_file=group.accounting_file) as probe:
        load = checked_load(url, settings, expected, label="cost: load unthrottled")
    _unanswered(load, settings["requests"])
    # No accounting file (a psutil-only group): no CPU per probe, and the timings fall back
    # to the replay's health figure (pipeline/gate/timings.py).
    rounds.append(list(zip(probe.latencies_s, probe.cpu_waits_s, strict=False)))
    failures += probe.failures
    for _ in range(settings["cost_worst_case_rounds"]):
        with HealthProbe(url, *probe_settings, accounting_file=group.accounting_file) as probe:
            drive_hostile(
                url,
                hostile_kinds(expected.samples, limits),
                concurrency=worst_case_concurrency(limits, settings),
                timeout_seconds=settings["worst_case_timeout_seconds"],
            )
        rounds.append(list(zip(probe.latencies_s, probe.cpu_waits_s, strict=False)))
        failures += probe.failures
    return rounds, failures


def measure_cost(render: RenderWebService, settings: dict, plan: dict, expected, model_dir: Path):
    """Cold starts and per-request costs of the service unthrottled; GateFailure if it fails."""
    cost, windows, keepers_before = ServiceCost(), [], keepers_cpu_seconds()
    for attempt in range(1, settings["cost_max_cold_starts"] + 1):
        with _service(render, settings, plan, model_dir) as started:
            group, url, prioritised, cpu, wall, phase, _ = started
            cost.cpu_accounting, cost.prioritised = group.cpu_accounting, prioritised
            windows.append(_service_costs(group, url, settings, expected))
        cost.cold_start_cpu_seconds.append(round(cpu, 4))
        cost.cold_start_wall_seconds.append(round(wall, 3))
        cost.cold_start_phases.append(phase)
        print(
            f"cost cold start {attempt}/{settings['cost_max_cold_starts']}: {cpu:.3f} CPU-s, "
            f"{wall:.2f} s wall" + (" (host busy)" if phase["noisy"] else ""),
            flush=True,
        )
        cheapest_noisy = cost.cold_start_phases[cost.cheapest_start]["noisy"]
        if attempt >= settings["cost_cold_starts"] and not cheapest_noisy:
            break
    for attempt in range(1, settings["max_phase_repeats"] + 2):
        with _service(render, settings, plan, model_dir) as started:
            group, url, _, cpu, wall, phase, limits = started
            window = _service_costs(group, url, settings, expected)
            waits = _health_waits(group, url, settings, expected, limits)
        windows.append(window)
        # A cold start too, seconds after the others: one more of which the least counts.
        cost.cold_start_cpu_seconds.append(round(cpu, 4))
        cost.cold_start_wall_seconds.append(round(wall, 3))
        cost.cold_start_phases.append(phase)
        print(
            f"cost per request {attempt}/{settings['max_phase_repeats'] + 1}: "
            f"{sum(window.predictions) / len(window.predictions) * 1000:.2f} ms CPU per "
            f"prediction, {window.saturated * 1000:.2f} ms with the queue full"
            + (" (host busy)" if window.phase["noisy"] or window.saturation_phase["noisy"] else ""),
            flush=True,
        )
        noisy = window.phase["noisy"] or window.saturation_phase["noisy"]
        if attempt == 1 or not noisy:
            cost.health_probe_rounds, cost.health_probe_failures = waits
        if not noisy:
            break
    batch = settings["cost_batch_requests"]
    cheapest = cheapest_window(windows, batch)
    cost.request_cpu_seconds, cost.health_cpu_seconds = cheapest.predictions, cheapest.checks
    cost.requests_phase = cheapest.phase
    cost.request_window_least_batches = [
        round(least_batch_cost(window.predictions, batch), 6) for window in windows
    ]
    cost.replayed_windows = [window.predictions for window in quiet_windows(windows)]
    least_saturated = cheapest_saturation(windows)
    cost.saturated_cpu_seconds = least_saturated.saturated
    cost.saturation_phase = least_saturated.saturation_phase
    cost.saturated_cpu_seconds_by_service = [round(window.saturated, 6) for window in windows]
    if cost.cold_start_phases[cost.cheapest_start]["noisy"]:
        cost.noisy.append(in_words("the cold start", cost.cold_start_phases[cost.cheapest_start]))
    if cost.requests_phase["noisy"]:
        cost.noisy.append(in_words("the per-request costs", cost.requests_phase))
    if cost.saturation_phase["noisy"]:
        cost.noisy.append(in_words("the saturated cost", cost.saturation_phase))
    cost.keeper_cpu_seconds = round(keepers_cpu_seconds() - keepers_before, 2)
    return cost
