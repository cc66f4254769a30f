"""The gate: the real service, started as render.yaml starts it, judged inside a plan's limits.

Its parts, in the order one run of pipeline/stages/gate.py goes through them:

- render_service: render.yaml's start command and envVars, and how the gate launches them
- preflight: refuse in seconds a bundle that cannot fit the plan's memory
- expected: the answers the live service must give, parity's own
- cost: what the service costs in CPU unthrottled, the least of several services
  - started_service: a fresh service in a group of the plan's memory, until it answers
  - host: how much the host's other work got in the way of a phase; CPUs kept awake
  - watch: the service's health until it answers, and its log
  - request_costs: one service's requests one at a time, and with its queue full
  - load: a bounded load of predictions, each answer checked against parity's
  - health_waits: health checks while the service is saturated, and its CPU meanwhile
  - health_probe: the probes as Render's checker sends them, in a process of their own
  - worst_case: the most memory-hungry requests the service accepts, at full concurrency
- throttled: the service under the plan's memory limit and CPU quota
- timings: the timings judged from the CPU cost at the plan's share
  - at_share: what a CPU cost means in wall time under a CPU quota
- verdict: each measure judged, with the figures (figures) and the machine (machine)
- plan_fit: which plans the candidate fits, scaled from the one measured
- outcome: passed, or what failed in words; the verdict when the service never ran
"""
