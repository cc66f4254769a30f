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

import numpy as np

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


def refusal(convincing: list[Renaming], labels_path) -> str:
    """Why the label list looks out of order, which classes, and the fix."""
    return (
        f"the label order looks wrong: {'; '.join(r.in_words() for r in convincing)}. "
        f"The labels in {labels_path} must be in the model's output order (line or entry i "
        "names output i); a LabelEncoder lists them sorted, which is the output order only if "
        "the model was trained on its encoding. Give the labels in output order"
    )
