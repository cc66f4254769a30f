"""The gate's timings from a CPU cost: the quota's arithmetic, the replay, and the host's noise."""

import pytest
from gate_helpers import gate_settings

from pipeline.gate.at_share import (
    replay_at_share,
    replay_load,
    wall_seconds_at_share,
    wall_seconds_at_steady_share,
)
from pipeline.gate.cost import ServiceCost, cheapest_saturation, cheapest_window, least_batch_cost
from pipeline.gate.host import Reading, interference
from pipeline.gate.machine import measured_elsewhere, this_machine
from pipeline.gate.request_costs import RequestWindow
from pipeline.gate.timings import in_words, timing_measures
from pipeline.report.tables import measured_where

# params.yaml's figures, written out: the tests below reason from them.
SETTINGS = gate_settings(
    max_cold_start_seconds=30.0,
    max_latency_p95_ms=250,
    max_latency_p99_ms=500,
    min_throughput_rps=20,
    min_sustainable_rps=20,
    max_health_latency_seconds=2.5,
    concurrency=4,
    requests=400,
    health_probe_interval_seconds=0.25,
    health_probe_timeout_seconds=5,
    cost_batch_requests=20,
    cpu_share=0.1,
)
QUIET = {"noisy": False, "measured_for": "service", "service_cpu_wait_share": 0.05}
NOISY = {"noisy": True, "measured_for": "service", "service_cpu_wait_share": 0.62}


def cost(cold_start_cpu=(0.5, 0.45, 0.47), request_cpu=0.002, phase=QUIET) -> ServiceCost:
    return ServiceCost(
        cold_start_cpu_seconds=list(cold_start_cpu),
        cold_start_wall_seconds=[0.5] * len(cold_start_cpu),
        cold_start_phases=[QUIET] * len(cold_start_cpu),
        request_cpu_seconds=[request_cpu] * 200,
        health_cpu_seconds=[0.0005] * 20,
        health_probe_rounds=[[(0.01, 0.004)], [(0.2, 0.12)], [(0.25, 0.14)]],
        requests_phase=phase,
    )


def test_a_quota_spends_its_share_of_every_period_then_waits_for_the_next():
    assert wall_seconds_at_share(0.45, 0.1) == pytest.approx(4.41)  # 44 whole periods + 10 ms
    assert wall_seconds_at_share(0.455, 0.1) == pytest.approx(4.505)  # 45 + 5 ms
    assert wall_seconds_at_share(0.005, 0.1) == pytest.approx(0.005)  # within the first period
    assert wall_seconds_at_share(0.45, 2.0) == 0.45  # one process uses one CPU at most


def test_the_replay_sustains_the_share_over_the_cost_and_is_the_same_every_time():
    arguments = {"workers": 1, "clients": 4, "requests_total": 400, "health_interval": 0.25}
    first = replay_load([0.002] * 10, 0.0005, share=0.1, **arguments)
    again = replay_load([0.002] * 10, 0.0005, share=0.1, **arguments)
    assert first == again
    assert first["throughput_rps"] == pytest.approx(0.1 / 0.002, rel=0.05)
    # Four clients' 8 ms fit in one period's 10 ms: every answer within about one period.
    assert max(first["latencies_ms"]) < 110
    starter = replay_load([0.002] * 10, 0.0005, share=0.5, **arguments)
    mean = [sum(r["latencies_ms"]) / len(r["latencies_ms"]) for r in (first, starter)]
    assert mean[1] < mean[0] / 3, "five times the share: a fifth of the wait, give or take"


def test_the_judged_replay_moves_with_the_cost_not_by_whole_periods_and_bounds_the_exact_one():
    arguments = {"workers": 1, "clients": 4, "requests_total": 400, "health_interval": 0.25}

    def p95(replay):
        return sorted(replay["latencies_ms"])[int(0.95 * len(replay["latencies_ms"]))]

    cheaper, dearer = (
        replay_at_share([cost] * 10, 0.0005, share=0.1, **arguments) for cost in (0.0024, 0.0026)
    )
    # Four clients' 9.6 or 10.4 ms straddle one period's 10 ms: the exact replay's p95 jumps
    # by a whole period between the two, the judged one by about the cost's 8%.
    exact = [replay_load([c] * 10, 0.0005, share=0.1, **arguments) for c in (0.0024, 0.0026)]
    assert p95(exact[1]) - p95(exact[0]) > 50
    assert p95(dearer) / p95(cheaper) == pytest.approx(0.0026 / 0.0024, rel=0.1)
    assert p95(cheaper) >= p95(exact[0]) and p95(dearer) >= p95(exact[1])
    assert cheaper["throughput_rps"] == pytest.approx(0.1 / 0.0024, rel=0.05)
    unthrottled = replay_at_share([0.0024] * 10, 0.0005, share=2.0, **arguments)
    assert unthrottled == replay_load([0.0024] * 10, 0.0005, share=2.0, **arguments)


def test_timings_are_judged_at_the_share_from_the_least_cold_start_and_the_least_batch():
    timings = timing_measures(cost(), SETTINGS, workers=1)
    measures, figures = timings.measures, timings.figures
    assert measures["cold_start_seconds"]["value"] == pytest.approx(4.41)
    assert measures["sustainable_rps"]["value"] == pytest.approx(50.0)
    # Each probe at 0.1 CPU: its wait that was not CPU, plus its CPU at the share, plus the 90
    # ms a quota stops for: 0.136, 1.37 and 1.6 s. Their 99th percentile: 1.595 s.
    assert measures["health_latency_saturated_seconds"]["value"] == pytest.approx(1.595, abs=1e-3)
    assert all(m["passed"] for m in measures.values()) and figures["latency_p50_ms"] > 0
    assert not any("host_busy" in m for m in measures.values())


def probes_waiting(cpu_waits: list[float]) -> list[tuple[float, float]]:
    """Probes that each waited 1 ms beyond the CPU the service spent meanwhile."""
    return [(cpu + 0.001, cpu) for cpu in cpu_waits]


def test_health_is_judged_on_the_99th_percentile_probe_not_on_one_pile_up():
    judged = []
    for pile_up in (0.07, 0.2):  # two probes land on a chance pile-up of bodies
        waited = cost()
        waited.health_probe_rounds = [
            probes_waiting([0.002] * 30),
            probes_waiting([0.01] * 190 + [0.02] * 8 + [pile_up] * 2),
        ]
        measures = timing_measures(waited, SETTINGS, workers=1).measures
        judged.append(measures["health_latency_saturated_seconds"]["value"])
    # The 99th percentile of 230 probes waited for 0.02 CPU-s either way: 0.2 s at 0.1 CPU,
    # plus the 90 ms a quota stops for, plus its 1 ms that was not CPU.
    assert judged == [pytest.approx(0.291), pytest.approx(0.291)]


def test_a_health_probe_that_failed_unthrottled_fails_health_as_the_whole_timeout():
    failed = cost()
    failed.health_probe_failures = ["HTTP 503 after 0.00 s"]
    measures = timing_measures(failed, SETTINGS, workers=1).measures
    health = measures["health_latency_saturated_seconds"]
    assert health["value"] == 5 and health["passed"] is False
    assert health["why"] == (
        "1 health probe(s) failed with no quota on the service, first: HTTP 503 after 0.00 s"
    )


def test_a_wait_at_a_steady_share_bounds_the_quota_from_any_point_and_moves_with_the_cpu():
    assert wall_seconds_at_steady_share(0.018, 0.1) == pytest.approx(0.27)
    assert wall_seconds_at_steady_share(0.022, 0.1) == pytest.approx(0.31)
    # The exact rule from a period's start jumps by a whole period between the two; from a
    # point where the quota is spent it adds the 90 ms stop. The steady figure bounds both.
    assert wall_seconds_at_share(0.022, 0.1) - wall_seconds_at_share(0.018, 0.1) > 0.09
    for cpu in (0.001, 0.0099, 0.0101, 0.018, 0.022, 0.45):
        worst_start = 0.09 + wall_seconds_at_share(cpu, 0.1)
        assert wall_seconds_at_steady_share(cpu, 0.1) >= worst_start - 1e-9, cpu
    assert wall_seconds_at_steady_share(0.3, 2.0) == 0.3  # no quota stop at a whole CPU


def test_the_sustainable_rate_is_the_share_over_an_answers_cost_with_the_queue_full():
    saturated = cost()
    saturated.saturated_cpu_seconds, saturated.saturation_phase = 0.0014, NOISY
    measures = timing_measures(saturated, SETTINGS, workers=1).measures
    # 0.1 CPU / 1.4 ms, not / the 2 ms a request costs alone.
    assert measures["sustainable_rps"]["value"] == pytest.approx(71.4)
    assert measures["sustainable_rps"]["host_busy"] == (
        "the host was busy during the saturated cost: the service waited 62% of the phase "
        "for CPU it was owed"
    )
    assert "host_busy" not in measures["latency_p95_ms"]  # its own phase was quiet


def test_a_disturbed_batch_does_not_raise_the_cost_per_request():
    costs = [0.002] * 20 + [0.004] * 20 + [0.003] * 20
    assert least_batch_cost(costs, 20) == pytest.approx(0.002)


def test_the_cheapest_quiet_window_of_one_at_a_time_requests_is_the_cost():
    def window(cost: float, phase: dict) -> RequestWindow:
        return RequestWindow([cost] * 40, [0.0005] * 5, phase)

    # One service's window read 2.9 ms and another's 1.8 on one quiet host: the least counts.
    windows = [window(0.0029, QUIET), window(0.0018, QUIET), window(0.0022, QUIET)]
    assert cheapest_window(windows, 20) is windows[1]
    # A window the host disturbed (the service waited for a core) counts only if all were.
    windows = [window(0.0025, QUIET), window(0.0018, NOISY)]
    assert cheapest_window(windows, 20) is windows[0]
    assert cheapest_window([windows[1]], 20) is windows[1]


def test_a_figure_from_a_phase_that_stayed_noisy_is_marked_in_words():
    measures = timing_measures(cost(phase=NOISY), SETTINGS, workers=1).measures
    sentence = measures["latency_p95_ms"]["host_busy"]
    assert sentence == (
        "the host was busy during the per-request costs: the service waited 62% of the phase "
        "for CPU it was owed"
    )
    assert "host_busy" not in measures["cold_start_seconds"]


def test_the_service_waited_only_for_what_its_quota_did_not_throttle():
    start = Reading(0.0, 100, 200, host_wait_s=1.0, service_wait_s=2.0, throttled_s=1.0)
    end = Reading(10.0, 290, 400, host_wait_s=9.0, service_wait_s=9.0, throttled_s=4.0)
    figures = interference(start, end, max_wait_share=0.3)
    # PSI counted 7 s of waiting; 3 of them were the quota's throttling, 4 were owed.
    assert figures["service_cpu_wait_share"] == 0.4 and figures["noisy"]
    assert figures["host_cpu_wait_share"] == 0.8 and figures["host_busy_share"] == 0.95
    without_group = interference(
        Reading(0.0, 0, 100, 1.0, None, 0.0), Reading(2.0, 50, 200, 1.2, None, 0.0), 0.3
    )
    assert without_group["measured_for"] == "host" and not without_group["noisy"]
    assert "host-wide PSI" in in_words("the cold start", without_group)


def test_a_verdict_says_when_another_machine_measured_it():
    here = {"measures": {"x": {}}, "machine": this_machine("cgroup-v1")}
    assert measured_elsewhere(here) is None
    there = {"measures": {"x": {}}, "machine": {**here["machine"], "id": "0" * 12}}
    assert measured_elsewhere(there).startswith("measured on another machine (")
    assert measured_elsewhere({"measures": {"x": {}}}) == (
        "it does not say which machine measured it"
    )


def test_the_release_report_marks_a_base_measured_on_another_plan_and_machine():
    machine = {**this_machine("cgroup-v2"), "id": "0" * 12, "cpu_model": "Other CPU"}
    candidate = {"plan": {"name": "starter", "memory_mb": 512, "cpu_share": 0.5}}
    base = {"plan": {"name": "free", "memory_mb": 512, "cpu_share": 0.1}}
    text = measured_where({**candidate, "machine": machine, "measures": {"x": {}}}, base)
    assert "NOT measured on this machine: measured on another machine (Other CPU" in text
    assert (
        "Base and candidate were measured on different plans (base free, candidate starter)" in text
    )
    same = measured_where({**candidate, "machine": this_machine("cgroup-v1")}, candidate)
    assert "NOT measured" not in same and "different plans" not in same


def test_the_least_saturated_cost_of_the_quiet_services_is_the_sustainable_rates_cost():
    def service(saturated: float, phase: dict) -> RequestWindow:
        return RequestWindow([0.002] * 40, [0.0005] * 5, QUIET, saturated, phase)

    # One service's least of three loads read 1.80 ms and another's 1.30 on one quiet host.
    services = [service(0.0018, QUIET), service(0.0013, QUIET), service(0.0015, QUIET)]
    assert cheapest_saturation(services).saturated == 0.0013
    # A load the host disturbed counts only if every service's was.
    services = [service(0.0016, QUIET), service(0.0012, NOISY)]
    assert cheapest_saturation(services).saturated == 0.0016
    assert cheapest_saturation(services[1:]).saturated == 0.0012


def test_latency_percentiles_are_the_least_over_the_windows_not_one_windows_outliers():
    plain = [0.002] * 200
    # Two requests of 25 ms in a window (a collection, a page fault), at the same mean.
    spiky = [0.025, 0.025] + [(0.4 - 0.05) / 198] * 198
    alone, spiky_alone, least = (
        timing_measures(
            ServiceCost(**{**cost().__dict__, "replayed_windows": windows}), SETTINGS, 1
        )
        for windows in ([plain], [spiky], [spiky, plain, spiky])
    )
    p99 = [timings.measures["latency_p99_ms"]["value"] for timings in (alone, spiky_alone, least)]
    # Alone, a spiky window's p99 carries its outliers; the window the host disturbed least
    # sets the figure, even where most windows were spiky.
    assert p99[1] > 1.5 * p99[0]
    assert p99[2] == p99[0]
    assert least.figures["latency_p99_ms_by_window"] == [p99[1], p99[0], p99[1]]
