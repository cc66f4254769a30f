"""A label list in the wrong order, as a user meets it: `python -m pipeline.init` copies it,
`dvc repro` stops at parity naming the user's own file and the fix, and promote repeats that
fix once, with no `dvc repro` that could not fix it."""

import json

import numpy as np
import pytest
from clones import clone_of, dvc, git, python
from user_files import class_signal_samples, trained_dense_classifier, write_user_files

from pipeline.paths import REPO_ROOT

pytestmark = pytest.mark.slow
SIGNS = [f"sign_{index:02d}" for index in range(12)]


def test_a_swapped_pair_is_named_in_the_users_own_file_by_parity_and_promote(tmp_path):
    swapped = list(SIGNS)
    swapped[3], swapped[7] = swapped[7], swapped[3]
    samples, class_ids = class_signal_samples(240, 12, shift=2.5, seed=1)
    downloads = tmp_path / "downloads"
    files = write_user_files(
        downloads,
        trained_dense_classifier(12, shift=2.5),
        normaliser=None,
        labels=swapped,
        labels_as="txt",
        heldout_x=samples,
        heldout_y=np.array(SIGNS)[class_ids],
    )
    work = clone_of(REPO_ROOT, tmp_path / "work")
    init = python(
        work,
        "pipeline.init",
        *("--model", files["model"], "--labels", files["labels"], "--heldout", files["heldout"]),
    )
    assert init.returncode == 0, init.stderr
    git(work, "add", "model.dvc", ".gitignore", "params.yaml")
    git(work, "commit", "-qm", "Bring my model")

    repro = dvc(work, "repro")
    assert repro.returncode != 0
    said = repro.stdout + repro.stderr
    users_file = downloads / "labels.txt"
    command = (
        f"`python -m pipeline.init --model {files['model']} --labels {users_file} "
        f"--heldout {files['heldout']}`"
    )
    assert "parity failed for none: the label order looks wrong: " in said
    assert "answers named 'sign_07' are mostly 'sign_03'" in said
    assert f"Your labels file {users_file} (copied to {work / 'model' / 'labels.txt'}" in said
    assert f"Fix: in {users_file}, make line 4 'sign_03' and line 8 'sign_07'" in said
    assert f"bring it in again with {command}, then run dvc repro" in said
    report = json.loads((work / "reports" / "parity.json").read_text())
    # Keras and the candidate agree perfectly on the wrong names: the confusion tells.
    assert report["measures"]["top1_agreement"]["passed"] is True
    assert report["measures"]["label_order"]["passed"] is False
    assert "accuracy" not in report["measures"]  # no floor unless the user sets one
    # The model itself is good: renamed, its answers are right about 0.9 of the time.
    assert report["accuracy"]["keras"] == report["accuracy"]["tflite"] < 0.85
    renaming = report["measures"]["label_order"]["renamings"][0]
    assert renaming["right_if_renamed"] >= 0.8 * sum(c in (3, 7) for c in class_ids)

    promote = python(work, "pipeline.promote", "--dry-run")
    assert promote.returncode == 1
    refusal = promote.stderr
    assert refusal.startswith("promotion refused: parity failed: the label order looks wrong: ")
    assert f"Fix: in {users_file}, make line 4 'sign_03' and line 8 'sign_07'" in refusal
    assert "gate: not judged for this candidate; it runs once parity passes" in refusal
    # Only the fix's own rerun: dvc's record of the failed stage is not a reason of its own.
    assert refusal.count("dvc repro") == 1, refusal
    assert "(dvc status)" not in refusal
