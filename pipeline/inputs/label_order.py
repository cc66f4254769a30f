"""Whether the label list names the model's outputs in their order, judged from the held-out
confusion: if renaming the answers (the best one-to-one matching of answered to true classes)
explains them markedly better than the names given, the names are in the wrong order.

Keras and the candidate agree on a misnamed output, and accuracy alone cannot tell a weak model
from a misnamed one; the confusion can. Each cycle of the best renaming (a swapped pair, or a
longer rotation) is judged on its own samples: the answers it would make right against those
the given names make right. A swapped pair of a good model turns nearly all of its answers
right; a weak model's confusions scatter, so a renaming wins a few of them by chance.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.inputs.labels import TEXT_SUFFIXES
from pipeline.inputs.provenance import init_command, source_of
from pipeline.params.sections import LabelOrderParams


@dataclass(frozen=True)
class Renaming:
    """One cycle of the best renaming: answers named `answered[i]` are mostly `true[i]`."""

    answered: list[str]
    true: list[str]
    right_as_named: int  # answers in these classes that the given names make right
    right_if_renamed: int  # ... that the renaming would make right
    p_value: float  # chance of a win this large, for one cycle, if the names were right

    @property
    def gain(self) -> int:
        return self.right_if_renamed - self.right_as_named

    def in_words(self) -> str:
        pairs = ", ".join(
            f"answers named {a!r} are mostly {t!r}"
            for a, t in zip(self.answered, self.true, strict=True)
        )
        return (
            f"{pairs} ({self.right_if_renamed} answers right if renamed vs "
            f"{self.right_as_named} as named)"
        )


def confusion(truth: np.ndarray, answered: np.ndarray, labels: list[str]) -> np.ndarray:
    """counts[t, a]: held-out samples of true class t that were answered as class a."""
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for true_label, answer in zip(truth.tolist(), answered.tolist(), strict=True):
        counts[index[true_label], index[answer]] += 1
    return counts


def _cycles(assigned_true: np.ndarray) -> list[list[int]]:
    """The permutation answered -> true class as its cycles longer than one."""
    seen, cycles = set(), []
    for start in range(len(assigned_true)):
        cycle, current = [], start
        while current not in seen:
            seen.add(current)
            cycle.append(current)
            current = int(assigned_true[current])
        if len(cycle) > 1:
            cycles.append(cycle)
    return cycles


def renamings(counts: np.ndarray, labels: list[str]) -> list[Renaming]:
    """Each cycle of the renaming that makes the most held-out answers right."""
    from scipy.optimize import linear_sum_assignment
    from scipy.stats import binomtest

    true_rows, answered_columns = linear_sum_assignment(counts, maximize=True)
    assigned_true = np.empty(len(labels), dtype=np.int64)
    assigned_true[answered_columns] = true_rows
    found = []
    for cycle in _cycles(assigned_true):
        as_named = int(sum(counts[a, a] for a in cycle))
        if_renamed = int(sum(counts[assigned_true[a], a] for a in cycle))
        # One-sided sign test: an answer in these classes is right under one naming or the
        # other, never both; with no preference, each side wins half.
        trials = as_named + if_renamed
        p_value = (
            binomtest(if_renamed, trials, 0.5, alternative="greater").pvalue if trials else 1.0
        )
        found.append(
            Renaming(
                answered=[labels[a] for a in cycle],
                true=[labels[assigned_true[a]] for a in cycle],
                right_as_named=as_named,
                right_if_renamed=if_renamed,
                p_value=float(p_value),
            )
        )
    return found


def judge_label_order(
    truth, answered, labels: list[str], rule: LabelOrderParams
) -> tuple[dict, list]:
    """The `label_order` measure (the share of held-out answers a convincing renaming would
    turn right; passes under rule.min_gain) and the renamings that convinced."""
    samples = len(truth)
    found = renamings(confusion(np.asarray(truth), np.asarray(answered), labels), labels)
    # The search tries every pair of classes: a chance win somewhere among them is that many
    # times likelier than for one pair (Bonferroni), so the bar is max_p_value over all pairs.
    pairs = max(1, len(labels) * (len(labels) - 1) // 2)
    convincing = [
        renaming
        for renaming in found
        if renaming.p_value * pairs <= float(rule.max_p_value)
        and renaming.gain >= float(rule.min_gain) * samples
    ]
    gain = round(sum(r.gain for r in convincing) / samples, 6) if samples else 0.0
    threshold = float(rule.min_gain)
    measure = {
        "value": gain,
        "threshold": threshold,
        "rule": "<",
        "passed": not convincing,
        "max_p_value": float(rule.max_p_value),
        "renamings": [
            {
                "answered": r.answered,
                "looks_like": r.true,
                "right_as_named": r.right_as_named,
                "right_if_renamed": r.right_if_renamed,
                "p_value": r.p_value,
                "convincing": r in convincing,
            }
            for r in found
        ],
    }
    return measure, convincing


def output_order(convincing: list[Renaming], labels: list[str]) -> list[str]:
    """The label list with each convincing renaming applied: the names the answers fit."""
    fixed = list(labels)
    for renaming in convincing:
        for answered, true in zip(renaming.answered, renaming.true, strict=True):
            fixed[labels.index(answered)] = true
    return fixed


def refusal(
    convincing: list[Renaming], labels: list[str], labels_path: Path, one_output: bool = False
) -> str:
    """Why the label list looks out of order, which classes, and the fix in the user's own file
    (the one `python -m pipeline.init` copied, when it did), then the commands to run. For one
    output, `labels` are its class and the rest (files.negative_name)."""
    labels_path = Path(labels_path)
    source, command = source_of(labels_path), init_command(labels_path)
    named = (
        f"Your labels file {source} (copied to {labels_path} by python -m pipeline.init)"
        if source
        else f"The labels file {labels_path}"
    )
    fixed = output_order(convincing, labels)
    editable = labels_path.suffix.lower() in (*TEXT_SUFFIXES, ".json")
    place = "line" if labels_path.suffix.lower() in TEXT_SUFFIXES else "entry"
    moves = " and ".join(
        f"{place} {index + 1} {name!r}" for index, name in enumerate(fixed) if name != labels[index]
    )
    if one_output:
        fix = (
            f"The one output's score is for the other class, not {labels[0]!r}. Fix: give that "
            f"class's name as the one label in {source or labels_path}, or, if the held-out y "
            "is what is inverted, swap its 1 and 0"
        )
    elif editable:
        fix = f"Fix: in {source or labels_path}, make {moves}"
    else:
        fix = (
            "A LabelEncoder lists its labels sorted, which is the output order only if the model "
            "was trained on its encoding. Fix: write the labels in output order to a .txt file, "
            f"one per line (its list with {moves})"
        )
    if command:
        again = "" if editable else " with that file as --labels"
        then = f"bring it in again with `{command}`{again}, then run dvc repro"
    else:
        then = "then run dvc repro"
    return (
        f"the label order looks wrong: {'; '.join(r.in_words() for r in convincing)}. "
        f"{named} must name the model's outputs in order ({place} 1 the first output, "
        f"{place} 2 the second, ...). "
        f"{fix}; {then}"
    )
