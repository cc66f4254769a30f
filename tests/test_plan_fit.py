"""Plan fit from measured figures: which Render plans fit, and the cheapest recommended."""

import dataclasses

from gate_helpers import gate_settings

from pipeline.gate.plan_fit import Measured, plan_fit, recommendation_in_words
from pipeline.params import Plan
from pipeline.verdicts import at_least, at_most

PLANS = {
    "free": Plan(
        memory_mb=512, cpu_share=0.1, price_usd_month=0, max_instances=1, max_peak_memory_mb=450
    ),
    "starter": Plan(
        memory_mb=512, cpu_share=0.5, price_usd_month=7, max_instances=100, max_peak_memory_mb=450
    ),
    "standard": Plan(
        memory_mb=2048,
        cpu_share=1.0,
        price_usd_month=25,
        max_instances=100,
        max_peak_memory_mb=1800,
    ),
}
SETTINGS = gate_settings(target_rps=10, plan_fit_utilisation=0.7)


def measured_on_free(**changes) -> Measured:
    """Figures as the gate measures them on Render free: 2 ms of CPU per request, 60 MB."""
    measured = Measured(
        plan_name="free",
        plan_memory_mb=512,
        plan_cpu_share=0.1,
        measures={
            "cold_start_seconds": at_most(1.7, 5.0),
            "latency_p95_ms": at_most(115.0, 250),
            "health_latency_saturated_seconds": at_most(0.4, 1.0),
            "wrong_answers": at_most(0, 0),
            "throughput_rps": at_least(49.0, 20),
        },
        workers=1,
        master_mb=25.0,
        per_worker_mb=35.0,
        cpu_seconds_per_request=0.002,
        oom_or_thrash=False,
    )
    return dataclasses.replace(measured, **changes)


def rows_by_name(fit: dict) -> dict[str, dict]:
    return {row["name"]: row for row in fit["plans"]}


def test_the_cheapest_plan_that_passes_every_gate_is_recommended():
    fit = plan_fit(PLANS, measured_on_free(), SETTINGS)
    assert fit["recommended"] == {"plan": "free", "workers": 1, "instances": 1}
    assert rows_by_name(fit)["free"]["why"] == "every gate passes (measured)"
    assert "estimated" in rows_by_name(fit)["standard"]["why"]


def test_a_rate_one_free_instance_cannot_serve_needs_a_plan_that_scales():
    # 0.1 CPU x 0.7 / 2 ms = 35 req/s per free instance; 100 req/s needs three.
    fit = plan_fit(PLANS, measured_on_free(), dataclasses.replace(SETTINGS, target_rps=100))
    free = rows_by_name(fit)["free"]
    assert not free["fits"] and "needs 3 instances" in free["why"] and "allows 1" in free["why"]
    assert fit["recommended"] == {"plan": "starter", "workers": 1, "instances": 1}


def test_a_latency_over_its_threshold_is_scaled_to_each_plans_cpu_share():
    slow = measured_on_free()
    slow.measures["health_latency_saturated_seconds"] = at_most(3.0, 1.0)
    fit = plan_fit(PLANS, slow, SETTINGS)
    rows = rows_by_name(fit)
    assert rows["free"]["why"].startswith("does not fit (measured): ")
    assert "health_latency_saturated_seconds 3.000 s measured" in rows["free"]["why"]
    assert rows["starter"]["fits"], "3 s at 0.1 CPU is about 0.6 s at 0.5 CPU"
    assert fit["recommended"]["plan"] == "starter"


def test_out_of_memory_fits_no_plan_of_that_size_and_asks_for_a_measure_on_a_bigger_one():
    fit = plan_fit(PLANS, measured_on_free(oom_or_thrash=True), SETTINGS)
    rows = rows_by_name(fit)
    assert rows["free"]["why"] == "does not fit (measured): ran out of memory in 512 MB"
    assert rows["starter"]["why"] == "does not fit (estimated): ran out of memory in 512 MB"
    assert rows["standard"]["basis"] == "not measured" and not rows["standard"]["fits"]
    assert rows["standard"]["why"] == (
        "not measured: the service ran out of memory in 512 MB; measure it here "
        "(gate.plan=standard)"
    )
    assert fit["recommended"] is None
    # Never "no plan fits" while a larger plan was never measured.
    assert recommendation_in_words(fit) == (
        "no measured plan fits; not measured: standard (measure one with gate.plan=standard)"
    )


def test_wrong_answers_fit_no_plan():
    wrong = measured_on_free()
    wrong.measures["wrong_answers"] = at_most(3, 0)
    fit = plan_fit(PLANS, wrong, SETTINGS)
    assert fit["recommended"] is None
    assert all("wrong_answers 3: no plan fixes that" in row["why"] for row in fit["plans"])
    assert recommendation_in_words(fit) == "no plan fits"


def test_a_plan_judged_on_figures_from_another_plan_says_estimated():
    slow = measured_on_free()
    slow.measures["latency_p95_ms"] = at_most(1300.0, 250)
    rows = rows_by_name(plan_fit(PLANS, slow, SETTINGS))
    assert rows["free"]["basis"] == "measured" and rows["starter"]["basis"] == "estimated"
    assert rows["starter"]["why"].startswith("does not fit (estimated): latency_p95_ms 260.000")
