"""64 clients flooding single-sample float32 predictions at the plan's CPU, ignoring Retry-After.

`python -m benchmarks.flood BUNDLE SAMPLES.npz [TREE ...]` starts render.yaml's service from
each tree (default: this one) in a 0.1 CPU group (Render free), floods /api/predict/ for
15 s while /api/health/ is probed every 0.5 s, and reports per tree: answers by status, the
slowest answer, requests with no answer within 5 s (Render's health-check timeout, and the
promise to clients), and the slowest health probe. Writes reports/flood.json.
"""

import json
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.batching_figures import cpu_pressure
from benchmarks.traffic import cpu_group, flood, probe_health, start_server
from pipeline.gate.render_service import RenderWebService
from pipeline.paths import REPO_ROOT

CLIENTS = 64
SECONDS = 15
ANSWER_WITHIN_SECONDS = 5.0
CPU_SHARE = 0.1


def flood_tree(tree: Path, bundle: Path, body: bytes) -> dict:
    """One flood against the service started from `tree`; what clients and health saw."""
    render = RenderWebService.read(REPO_ROOT / "render.yaml")
    env = {**render.env, "MODEL_DIR": str(bundle), "PYTHONPATH": str(tree)}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    with cpu_group(CPU_SHARE, "bench-flood") as group:
        _, port, _ = start_server(group, render.start_command, env, cwd=tree)
        probes: list = []
        prober = threading.Thread(
            target=lambda: probes.extend(probe_health(port, int(SECONDS / 0.5) - 4, 0.5))
        )
        answers: list = []
        flooder = threading.Thread(
            target=lambda: answers.extend(
                flood(port, body, "application/octet-stream", CLIENTS, SECONDS, 10.0)
            )
        )
        flooder.start()
        threading.Event().wait(1.0)  # probe once the flood is on
        prober.start()
        flooder.join()
        prober.join()
    statuses = Counter(status for status, _ in answers)
    late = [s for status, s in answers if status == 0 or s > ANSWER_WITHIN_SECONDS]
    return {
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "slowest_answer_seconds": round(max(s for _, s in answers), 3),
        "not_answered_within_5s": len(late),
        "health_probes": len(probes),
        "health_not_200": sum(1 for status, _ in probes if status != 200),
        "slowest_health_seconds": round(max(s for _, s in probes), 3),
    }


if __name__ == "__main__":
    bundle_dir, samples_path = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    trees = [Path(arg).resolve() for arg in sys.argv[3:]] or [REPO_ROOT]
    with np.load(samples_path) as archive:
        sample_body = archive["X"][0].astype("<f4").tobytes()
    result = {"cpu_pressure_before": cpu_pressure(), "trees": {}}
    for tree_dir in trees:
        label = "this tree" if tree_dir == REPO_ROOT else tree_dir.name
        result["trees"][label] = flood_tree(tree_dir, bundle_dir, sample_body)
    result["cpu_pressure_after"] = cpu_pressure()
    (REPO_ROOT / "reports" / "flood.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
