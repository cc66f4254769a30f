"""The gate's reasons in words, from what one run of the service showed."""

from pipeline.gate.run import ServiceRun
from pipeline.gate.verdict import reasons_in_words


def test_a_service_that_hit_its_limit_without_an_oom_kill_is_said_to_thrash():
    run = ServiceRun(failcnt=812, failcnt_before_worst_case=0, failure="the service was slow")
    run.service_log_tail = ["worker booting", "POST /api/predict/ 200 9000ms", ""]
    reasons = reasons_in_words(run, {"memory_mb": 512})
    assert reasons[0].startswith("the service thrashed at the 512 MB limit: the group hit it 812")
    assert "no OOM" not in reasons[0] and "instead of killing anything" in reasons[0]
    assert reasons[1] == "the service was slow (service log: POST /api/predict/ 200 9000ms)"
