"""Random-kill trials of promote and rollback on copies of a repository prepared once: the
preparation, one trial (a SIGKILL at a random moment, then one rerun), and what the rerun must
say given what the kill left."""

import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from clones import git
from release_repos import kill_9
from workspaces import DEMO_INPUT_FILES, make_workspace

from pipeline.paths import REPO_ROOT, WORKSPACE_ENV, Workspace
from pipeline.release.orphans import processes_of
from pipeline.report.write import CHART_CACHE_NAME
from pipeline.verdicts import read_json, write_verdict
from service.bundle import sha256_of

# The gate stages as a DVC project of their own: `dvc status` runs on every promote (its
# rwlock and repository lock in .dvc/tmp), and the verdicts' fingerprints follow this dvc.yaml.
DVC_YAML = {
    "stages": {
        "convert": {
            "cmd": "true",
            "deps": ["inputs/model.keras"],
            "params": ["convert.quantization"],
        },
        "parity": {
            "cmd": "true",
            "deps": ["inputs/heldout.npz", "build/candidate/model.tflite"],
            "params": ["parity.min_accuracy"],
        },
        "gate": {"cmd": "true", "deps": ["build/candidate/model.tflite"], "params": ["gate.plan"]},
    }
}
TEMPLATE_REPO, TEMPLATE_REMOTE, DURATION_FILE = "repo", "remote.git", "full-run-seconds.json"
CHART_CACHE = f"{TEMPLATE_REPO}/build/{CHART_CACHE_NAME}"
ORPHAN_DEADLINE_SECONDS = 300  # a bound on waiting for what a killed run left; never reached


def run(*command: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        command, cwd=cwd, env=env or os.environ, capture_output=True, text=True
    )
    assert completed.returncode == 0, f"{command}: {completed.stdout}{completed.stderr}"
    return completed


def command_env(copy: Path) -> dict:
    """promote's environment for a copy: its workspace, and DVC's site cache inside it."""
    return {
        **os.environ,
        WORKSPACE_ENV: str(copy / TEMPLATE_REPO),
        "DVC_SITE_CACHE_DIR": str(copy / "dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
    }


def pipeline(copy: Path, *args: str) -> subprocess.Popen:
    """`python -m pipeline.promote <args>` on the copy, in a session of its own, so a kill can
    take every process it started with it, as a power cut would."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.promote", *args],
        cwd=REPO_ROOT,
        env=command_env(copy),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finished(copy: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """One whole run on the copy, and its wall time."""
    started = time.monotonic()
    process = pipeline(copy, *args)
    out, err = process.communicate(timeout=ORPHAN_DEADLINE_SECONDS)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), (
        time.monotonic() - started
    )


def make_dvc_release_repo(checked: Workspace, gated: Workspace, folder: Path) -> Workspace:
    """make_release_repo's repository as a DVC project, as this project is one: the inputs
    tracked by DVC, the gate stages in a dvc.yaml of their own (so `dvc status` runs on every
    promote, with its rwlock and repository lock in .dvc/tmp), up to date, every verdict's
    fingerprint taken from that dvc.yaml; committed and pushed to a bare remote beside it."""
    env = command_env(folder)
    git(folder, "init", "-q", "--bare", TEMPLATE_REMOTE)
    inputs = {key: f"inputs/{name}" for key, name in DEMO_INPUT_FILES.items()}
    workspace = make_workspace(folder / TEMPLATE_REPO, inputs={**inputs, "folder": "inputs"})
    root = workspace.root
    shutil.copytree(checked.demo_dir, root / "inputs")
    (root / ".gitignore").write_text("build/\n")
    shutil.copy(gated.render_yaml_path, workspace.render_yaml_path)  # the plan the gate ran
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "release@example.com")
    git(root, "config", "user.name", "Release Engineer")
    for command in (("init", "-q"), ("config", "core.analytics", "false"), ("add", "-q", "inputs")):
        run(sys.executable, "-m", "dvc", *command, cwd=root, env=env)
    shutil.copytree(checked.candidate_dir, workspace.candidate_dir)
    workspace.parity_predictions_path.parent.mkdir(parents=True)
    shutil.copy(checked.parity_predictions_path, workspace.parity_predictions_path)
    run(sys.executable, "-m", "dvc", "repro", "-q", cwd=root, env=env)
    workspace.reports_dir.mkdir()
    for stage, source in (("convert", checked), ("parity", checked), ("gate", gated)):
        verdict = read_json(source.report_path(stage))
        write_verdict(workspace, stage, verdict)
    for plot in checked.reports_dir.glob("parity_*.csv"):
        shutil.copy(plot, workspace.reports_dir / plot.name)
    git(root, "add", ".")
    git(root, "reset", "-q", "--", "reports")  # the pipeline's own: the release commits them
    git(root, "commit", "-qm", "project")
    git(root, "remote", "add", "origin", str(folder / TEMPLATE_REMOTE))
    git(root, "push", "-q", "-u", "origin", "main")
    shutil.rmtree(folder / "dvc-site-cache", ignore_errors=True)
    return workspace


def copy_of(template: Path, copy: Path) -> Workspace:
    """A copy of a prepared folder (repository and remote), its origin pointed at its remote."""
    run("cp", "-a", str(template), str(copy), cwd=template.parent)
    git(copy / TEMPLATE_REPO, "remote", "set-url", "origin", str(copy / TEMPLATE_REMOTE))
    return Workspace(copy / TEMPLATE_REPO)


def prepare(checked: Workspace, gated: Workspace, folder: Path) -> None:
    """The promote template (a DVC project with a gated candidate, nothing released) and the
    rollback template (model-v1 and model-v2 released, v2 for a change to render.yaml), each
    with the measured wall time of one whole run of what its trials kill.

    The promote template holds the release report's charts, drawn by the first release made
    from it (build/report-charts): its trials spend no CPU drawing them again. A kill while
    they are drawn could only land in promote's own computation, into scratch, which the kills
    elsewhere in the write step cover."""
    promote_template, rollback_template = folder / "promote", folder / "rollback"
    promote_template.mkdir()
    make_dvc_release_repo(checked, gated, promote_template)
    workspace = copy_of(promote_template, rollback_template)
    completed, _ = finished(rollback_template)
    assert completed.returncode == 0, completed.stderr
    shutil.copytree(workspace.build_dir / CHART_CACHE_NAME, promote_template / CHART_CACHE)
    with open(workspace.root / "render.yaml", "a") as render_yaml:
        render_yaml.write("# served differently\n")
    git(workspace.root, "commit", "-qam", "a change to what is served")
    completed, _ = finished(rollback_template)
    assert completed.returncode == 0, completed.stderr
    for template, args in ((promote_template, ()), (rollback_template, ("--rollback", "model-v1"))):
        measured = folder / "measure"
        copy_of(template, measured)
        completed, seconds = finished(measured, *args)
        assert completed.returncode == 0, completed.stderr
        (template / DURATION_FILE).write_text(json.dumps(seconds))
        shutil.rmtree(measured)
    shutil.rmtree(rollback_template / "dvc-site-cache", ignore_errors=True)


def refs(repository: Path) -> str:
    return git(repository, "show-ref", "--heads", "--tags")


def lock_files(workspace: Workspace) -> list[str]:
    """The lock files a rerun must clear, relative to the repository: git's, and DVC's rwlock
    when DVC could not read it."""
    root = workspace.root
    found = [str(path.relative_to(root)) for path in (root / ".git").glob("**/*.lock")]
    found = [name for name in found if not name.endswith("pipeline-release.lock")]
    rwlock = root / ".dvc" / "tmp" / "rwlock"
    if rwlock.is_file():
        try:
            json.loads(rwlock.read_text())
        except ValueError:
            found.append(".dvc/tmp/rwlock")
    return sorted(found)


@dataclass
class Aftermath:
    """What a kill left: the journal (if any), the remote's refs, the stale locks."""

    killed: bool
    journal: dict | None
    remote_landed: bool  # the remote names the release the killed run was making
    locks: list[str]


def wait_for_orphans(workspace: Workspace) -> None:
    """Wait until no process of the killed run (named in the release lock) is left."""
    lock = workspace.root / ".git" / "pipeline-release.lock"
    text = lock.read_text() if lock.is_file() else ""  # killed before it took the lock
    run_ids = re.findall(r"\b[0-9a-f]{32}\b", text)
    deadline = time.monotonic() + ORPHAN_DEADLINE_SECONDS
    while run_ids and processes_of(run_ids):
        assert time.monotonic() < deadline, "the killed run's processes never ended"
        time.sleep(0.05)


def kill_at_random(copy: Path, seed: int, bound: float, subject: str, *args: str) -> Aftermath:
    """Start the command, SIGKILL it (alone, or with every process it started) after a delay
    uniform in [0, bound), let what it left alone finish, and record what it left (`subject`:
    the release commit's subject)."""
    chance = random.Random(seed)
    delay, every_process = chance.uniform(0, bound), chance.random() < 0.5
    workspace = Workspace(copy / TEMPLATE_REPO)
    process = pipeline(copy, *args)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=delay)
    killed = process.poll() is None
    kill_9(process, every_process)
    wait_for_orphans(workspace)
    journal_path = workspace.build_dir / "promote" / "journal.json"
    journal = json.loads(journal_path.read_text()) if journal_path.is_file() else None
    return Aftermath(killed, journal, landed(copy, journal, subject), lock_files(workspace))


def landed(copy: Path, journal: dict | None, subject: str) -> bool:
    """Whether the remote names the release the killed run was making: the journal's commit
    (by its tag for a promote), or, with no journal left, a commit `subject` on its branch."""
    remote = copy / TEMPLATE_REMOTE
    if journal is None:
        return subject in git(remote, "log", "--format=%s", "main")
    ref = journal["tag"] or "main"
    return git(remote, "rev-parse", f"{ref}^{{commit}}", check=False).strip() == journal["commit"]


# Each way a rerun can account for what a killed run left; exactly those that apply appear.
NEVER_PUSHED = "never reached origin: it stopped before its push"
LANDED = "had reached origin (asked with git ls-remote); it is complete"
PUSHED_AGAIN = "the same release commit is pushed again"
ACCOUNTS = (NEVER_PUSHED, LANDED, PUSHED_AGAIN)


@dataclass(frozen=True)
class Words:
    """What a command says when the release was already made (`done`), when it makes it
    (`fresh`), and after it finished an interrupted one (`recovered`, None: nothing more)."""

    done: str
    fresh: str
    recovered: str | None


PROMOTE_WORDS = Words("already promoted: model-v1", "promoted model-v1", None)
ROLLBACK_WORDS = Words("already at model-v1", "rolled back to model-v1", "already at model-v1")


def account(after: Aftermath, words: Words) -> list[str]:
    """What the rerun must say, given what the kill left."""
    journal = after.journal
    if journal is None:
        return [words.done if after.remote_landed else words.fresh]
    if journal["step"] not in ("verify", "push"):
        return [NEVER_PUSHED, words.fresh]
    finished_here = [LANDED] if after.remote_landed else [PUSHED_AGAIN, "it is complete"]
    return finished_here + ([words.recovered] if words.recovered else [])


def assert_true_account(after: Aftermath, stdout: str, words: Words) -> None:
    """The rerun says exactly what applies to what the kill left, and names every lock it
    removed, each one the kill had left."""
    expected = account(after, words)
    done, fresh = words.done, words.fresh
    for phrase in (*ACCOUNTS, done, fresh):
        assert (phrase in stdout) == (phrase in expected), (phrase, after, stdout)
    removed = re.findall(r"^removed (.+?)(?:, left by|: it was)", stdout, re.M)
    named = sorted(name for names in removed for name in names.split(", "))
    assert named == after.locks, (named, after, stdout)


def assert_one_release(workspace: Workspace, remote: Path, subject: str) -> None:
    """Both sides name the same refs, one commit carries `subject`, nothing is left over."""
    root = workspace.root
    assert refs(remote) == refs(root)
    assert git(root, "log", "--format=%s", "main").count(subject) == 1
    assert git(root, "status", "--porcelain") == ""
    assert lock_files(workspace) == []
    assert not list((workspace.build_dir / "promote").glob("*"))
    assert sha256_of(workspace.release_dir / "model.tflite") == sha256_of(
        workspace.candidate_dir / "model.tflite"
    )
