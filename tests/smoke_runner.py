"""The post-deploy smoke check as the workflow runs it: `python -m checks.smoke` against a
service's URL and the promoted manifest."""

import os
import subprocess
import sys

from pipeline.paths import REPO_ROOT


def smoke(
    url: str, manifest, deadline: float = 20, report_path=None, **env
) -> subprocess.CompletedProcess:
    """The smoke check with a short first wait; `env` added to this process's environment."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "checks.smoke",
            "--url",
            url,
            "--manifest",
            str(manifest),
            "--deadline",
            str(deadline),
            "--first-wait",
            "0.2",
            *(["--report", str(report_path)] if report_path else []),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=deadline + 60,
        env={**os.environ, **env},
    )
