"""The label-order check on answers alone: a swapped pair is named, a weak model is not."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.inputs.label_order import judge_label_order, refusal
from pipeline.inputs.provenance import write_sources
from pipeline.params import load_params
from pipeline.paths import Workspace

RULE = load_params(Workspace()).parity.label_order


def answers(classes: int, accuracy: float, samples: int, seed: int, near: bool = False):
    """True class ids and a model's answers: right with `accuracy`, else a random class
    (or, with `near`, a neighbouring class, as a weak model's confusions often lean)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, samples)
    answered = truth.copy()
    wrong = rng.random(samples) > accuracy
    if near:
        answered[wrong] = (truth[wrong] + rng.choice([-1, 1, 2], wrong.sum())) % classes
    else:
        answered[wrong] = rng.integers(0, classes, wrong.sum())
    return truth, answered


def named(truth, answered, labels, given):
    """(held-out labels, answers as the given label list names them)."""
    return np.array(labels)[truth], np.array(given)[answered]


@pytest.mark.parametrize("seed", range(20))
def test_two_swapped_names_of_twelve_are_caught_and_named(seed):
    labels = [f"sign_{i:02d}" for i in range(12)]
    given = list(labels)
    given[3], given[7] = given[7], given[3]
    truth, answered = answers(12, 0.9, 240, seed)
    measure, convincing = judge_label_order(*named(truth, answered, labels, given), given, RULE)
    assert measure["passed"] is False and measure["value"] >= 0.1
    assert len(convincing) == 1
    assert sorted(convincing[0].answered) == ["sign_03", "sign_07"]
    message = refusal(convincing, given, Path("my_labels.txt"))
    assert "answers named 'sign_07' are mostly 'sign_03'" in message
    assert "answers named 'sign_03' are mostly 'sign_07'" in message
    assert "The labels file my_labels.txt must name the model's outputs in order" in message
    assert "Fix: in my_labels.txt, make line 4 'sign_03' and line 8 'sign_07'" in message


@pytest.mark.parametrize("near", [False, True])
def test_weak_correctly_named_models_are_not_refused(near):
    labels = [f"c{i}" for i in range(6)]
    refused = 0
    for seed in range(200):
        truth, answered = answers(6, 0.3, 120, seed, near=near)
        measure, _ = judge_label_order(*named(truth, answered, labels, labels), labels, RULE)
        refused += not measure["passed"]
    assert refused == 0


def test_a_model_that_answers_one_class_is_not_refused():
    labels = ["a", "b", "c", "d"]
    truth = np.random.default_rng(1).integers(0, 4, 24)
    measure, _ = judge_label_order(*named(truth, np.full(24, 2), labels, labels), labels, RULE)
    assert measure["passed"] is True and measure["value"] == 0.0


def test_a_class_with_no_held_out_samples_is_no_evidence():
    labels = ["a", "b", "c"]
    truth = np.array([0] * 20 + [1] * 20)
    measure, _ = judge_label_order(*named(truth, truth, labels, labels), labels, RULE)
    assert measure["passed"] is True


def test_one_outputs_score_for_the_other_class_says_to_name_that_class():
    names = ["dog", "not dog"]  # one output, one label: its class and the rest
    truth = np.random.default_rng(2).integers(0, 2, 60)
    measure, convincing = judge_label_order(*named(truth, 1 - truth, names, names), names, RULE)
    assert measure["passed"] is False
    message = refusal(convincing, names, Path("labels.txt"), one_output=True)
    assert "The one output's score is for the other class, not 'dog'" in message
    assert "give that class's name as the one label in labels.txt" in message


def test_the_refusal_names_the_users_file_only_while_the_copy_is_what_init_copied(tmp_path):
    labels = ["a", "b", "c"]
    truth = np.random.default_rng(3).integers(0, 3, 90)
    given = ["b", "a", "c"]
    _, convincing = judge_label_order(*named(truth, truth, labels, given), given, RULE)
    copy, users_file = tmp_path / "model" / "labels.txt", Path("/home/me/labels.txt")
    copy.parent.mkdir()
    copy.write_text("b\na\nc\n")
    write_sources(copy.parent, {"labels.txt": users_file}, ["python", "-m", "pipeline.init"])
    message = refusal(convincing, given, copy)
    assert f"Your labels file {users_file} (copied to {copy} by python -m pipeline.init)" in message
    assert "bring it in again with `python -m pipeline.init`, then run dvc repro" in message
    copy.write_text("b\na\nc\nd\n")  # edited in model/ since: the copy is what parity read
    message = refusal(convincing, given, copy)
    assert f"The labels file {copy} must name" in message and str(users_file) not in message
    assert message.endswith(f"Fix: in {copy}, make line 1 'a' and line 2 'b'; then run dvc repro")
