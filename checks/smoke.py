"""Post-deploy smoke check: prove that the model live at URL is the model promoted.

    python -m checks.smoke --url https://app.onrender.com [--manifest release/manifest.json]
        [--report smoke-report.json]

Polls /api/health/ with backoff until the deadline (a free instance's cold start takes tens
of seconds), then requires predictor ready and the promoted sha256, replays the golden set
within the manifest's tolerance, and checks that a malformed request gets a 4xx.
Exit 0 only when every check holds; the report also goes to $GITHUB_STEP_SUMMARY if set, and
with --report to a JSON file whose `outcome` (checks/report.py) says what failed, for the
post-deploy workflow to act on (checks/after_deploy.py).
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

from checks.report import (
    GOLDEN_MISMATCH,
    MALFORMED_ACCEPTED,
    MANIFEST_ERROR,
    NOT_READY,
    OK,
    SERVICE_ERROR,
    TIMEOUT,
    UNREACHABLE,
    WRONG_MODEL,
    SmokeReport,
    write_report,
)
from service.bundle import LFS_POINTER_PREFIX
from service.errors import Refusal
from service.predictor import Contract

DEFAULT_DEADLINE_SECONDS = 300.0
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 15.0


class ManifestError(Refusal):
    """The manifest cannot drive a smoke check; the message names the fix."""


def read_release_manifest(manifest_path: Path) -> dict:
    """The promoted manifest with its golden set on disk, or ManifestError naming the fix."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    golden = manifest.get("golden")
    if not golden:
        raise ManifestError(
            f"{manifest_path} has no golden set: it is a candidate's manifest, not a release's; "
            "pass release/manifest.json, which `python -m pipeline.promote` writes"
        )
    golden_path = manifest_path.parent / golden["file"]
    if not golden_path.is_file():
        raise ManifestError(
            f"the golden set {golden_path} is missing; it is stored through Git LFS: run "
            "`git lfs install --local && git lfs pull` (in a workflow: checkout with lfs: true)"
        )
    if golden_path.read_bytes()[: len(LFS_POINTER_PREFIX)] == LFS_POINTER_PREFIX:
        raise ManifestError(
            f"{golden_path} is a Git LFS pointer, not the golden set; run "
            "`git lfs install --local && git lfs pull`"
        )
    return manifest


def planned_attempts(deadline_seconds: float, first_wait: float) -> int:
    """How many polls it takes to reach the deadline with doubling waits, capped; the last
    poll lands on the deadline itself."""
    attempts, elapsed, wait = 1, 0.0, first_wait
    while elapsed < deadline_seconds:
        elapsed += wait
        attempts += 1
        wait = min(wait * 2, MAX_BACKOFF_SECONDS)
    return attempts


def outcome_of_request_error(error: Exception) -> str:
    """A connection that never opened is unreachable (a connect timeout too); one that opened
    and got no answer in time is a timeout (a cold start); anything else is not ready."""
    if isinstance(error, requests.ConnectionError):
        return UNREACHABLE
    if isinstance(error, requests.Timeout):
        return TIMEOUT
    return NOT_READY


@dataclass(frozen=True)
class Health:
    """How the health polls ended: the last attempt's outcome (checks/report.py) and the model
    sha256 the service last said it serves."""

    healthy: bool
    detail: str
    outcome: str
    live_sha256: str | None


def poll_health(
    url: str, expected_sha256: str, deadline_seconds: float, first_wait: float
) -> Health:
    """Poll until healthy with the expected model, or the deadline."""
    started = time.monotonic()
    attempts = planned_attempts(deadline_seconds, first_wait)
    wait, last, outcome, seen_sha256 = first_wait, "no answer", UNREACHABLE, None
    for attempt in range(1, attempts + 1):
        remaining = deadline_seconds - (time.monotonic() - started)
        try:
            response = requests.get(
                f"{url}/api/health/",
                allow_redirects=False,
                timeout=min(REQUEST_TIMEOUT_SECONDS, max(remaining, 1.0)),
            )
            outcome = NOT_READY
            body = response.json() if "json" in response.headers.get("Content-Type", "") else {}
            if not isinstance(body, dict):  # not this service's health answer: say so, poll on
                raise ValueError(f"the health answer is not a JSON object: {response.text[:80]}")
            live_sha256 = body.get("model_sha256")
            seen_sha256 = live_sha256 or seen_sha256
            if response.status_code != 200:
                # The service's `fault` tells a corrupt or missing LFS object on the git remote
                # from a build that never pulled (service/lfs_pull.py); its reason says the fix.
                fault = f" ({body['fault']})" if body.get("fault") else ""
                reason = body.get("reason") or response.text[:200]
                last = f"HTTP {response.status_code}{fault}: {reason}"
            elif body.get("predictor") != "ready":
                last = f"predictor is {body.get('predictor')!r}, not 'ready'"
            elif live_sha256 != expected_sha256:
                # An older release until Render finishes deploying the new one.
                last = f"still serving {live_sha256}, waiting for {expected_sha256}"
                outcome = WRONG_MODEL
            else:
                return Health(
                    True,
                    f"healthy after {time.monotonic() - started:.1f} s, sha256 {live_sha256}",
                    OK,
                    live_sha256,
                )
        except (requests.RequestException, ValueError) as error:
            last = f"{type(error).__name__}: {str(error)[:200]}"
            outcome = outcome_of_request_error(error)
        print(f"attempt {attempt}/{attempts}: {last}", flush=True)
        remaining = deadline_seconds - (time.monotonic() - started)
        if remaining <= 0 or attempt == attempts:
            break
        time.sleep(min(wait, remaining))
        wait = min(wait * 2, MAX_BACKOFF_SECONDS)
    return Health(
        False, f"not healthy within {deadline_seconds:.0f} s: {last}", outcome, seen_sha256
    )


def check_golden(url: str, manifest: dict, manifest_dir: Path) -> tuple[str, str]:
    """Replay the golden inputs; labels must match and probabilities stay within tolerance.
    (outcome, detail): ok, golden_mismatch, or service_error when it gets no answers."""
    golden = manifest["golden"]
    value_key = Contract.from_manifest(manifest).value_key  # "probability" or "score"
    with np.load(manifest_dir / golden["file"], allow_pickle=False) as archive:
        samples = archive["X"].astype("<f4")
    response = requests.post(
        f"{url}/api/predict/",
        params={"top_k": len(manifest["labels"])},
        data=samples.tobytes(),
        headers={"Content-Type": "application/octet-stream"},
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    if response.status_code != 200:
        return SERVICE_ERROR, f"HTTP {response.status_code}: {response.text[:200]}"
    predictions = response.json()["predictions"]
    worst, mismatched = 0.0, []
    for index, (prediction, label, expected) in enumerate(
        zip(predictions, golden["labels"], golden["probabilities"], strict=True)
    ):
        if prediction["label"] != label:
            mismatched.append(f"sample {index}: {prediction['label']} != {label}")
        live = {entry["label"]: entry[value_key] for entry in prediction["top_k"]}
        for class_index, name in enumerate(manifest["labels"]):
            worst = max(worst, abs(live[name] - expected[class_index]))
    if mismatched or worst > golden["tolerance"]:
        return GOLDEN_MISMATCH, (
            f"{'; '.join(mismatched) or 'labels match'}; max |dp| {worst:.2e} "
            f"(tolerance {golden['tolerance']})"
        )
    return OK, f"{len(predictions)} samples, labels match, max |dp| {worst:.2e}"


def check_rejects_malformed(url: str) -> tuple[bool, str]:
    response = requests.post(
        f"{url}/api/predict/", json={"instances": "not numbers"}, timeout=REQUEST_TIMEOUT_SECONDS
    )
    return 400 <= response.status_code < 500, f"malformed request answered {response.status_code}"


def smoke(url: str, manifest_path: Path, deadline_seconds: float, first_wait: float) -> SmokeReport:
    """Run every check in order; later checks run only once the service is healthy."""
    url = url.rstrip("/")
    manifest = read_release_manifest(manifest_path)
    report = SmokeReport(url, release={"tag": manifest.get("tag"), "sha256": manifest["sha256"]})
    health = poll_health(url, manifest["sha256"], deadline_seconds, first_wait)
    report.live_sha256 = health.live_sha256
    if not report.record("health and model sha256", health.healthy, health.detail, health.outcome):
        return report
    try:
        golden, detail = check_golden(url, manifest, manifest_path.parent)
        report.record("golden set", golden == OK, detail, golden)
        report.record(
            "malformed request gets 4xx",
            *check_rejects_malformed(url),
            MALFORMED_ACCEPTED,
        )
    except (requests.RequestException, ValueError, KeyError) as error:
        detail = f"{type(error).__name__}: {error}"
        report.record("service answers", False, detail, SERVICE_ERROR)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m checks.smoke", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--url", required=True, help="the service's base URL")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=Path("release/manifest.json"),
        help="the promoted manifest (default: release/manifest.json)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEFAULT_DEADLINE_SECONDS,
        help="seconds to wait for a healthy service (default: %(default)s)",
    )
    parser.add_argument(
        "--first-wait",
        type=float,
        default=1.0,
        help="seconds before the second poll; doubles each time",
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="also write the report as JSON here, its outcome included (checks/report.py)",
    )
    args = parser.parse_args(argv)
    try:
        if not args.manifest.is_file():
            raise ManifestError(f"{args.manifest} does not exist; pass --manifest")
        report = smoke(args.url, args.manifest, args.deadline, args.first_wait)
        exit_code = 0 if report.passed else 1
    except ManifestError as error:
        print(f"smoke check: {error}", file=sys.stderr)
        report = SmokeReport(args.url.rstrip("/"))
        report.record("release manifest", False, str(error), MANIFEST_ERROR)
        exit_code = 2
    if args.report:
        write_report(report, args.report)
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as summary:
            summary.write(report.markdown())
    print(f"smoke check {'passed' if report.passed else 'FAILED'} for {report.url}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
