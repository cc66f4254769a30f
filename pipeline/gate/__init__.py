"""The gate: the real service, started as render.yaml starts it, judged inside a plan's limits.

The gate's parts in the order one run flows through them: preflight, the service as
render.yaml starts it (render_service, watch), the load and the worst case (load, worst_case,
run), the verdict on what was measured (verdict), then which plans fit it (plan_fit).
A later part never imports an earlier part's caller."""
