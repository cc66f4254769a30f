"""params.yaml's sections other than `gate`, each a frozen dataclass of its keys.

See params.yaml itself for what each key means.
"""

import typing
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.params.reading import at_least, child, more_than, refuse

Quantization = Literal["none", "float16", "dynamic", "int8"]
QUANTIZATIONS: tuple[str, ...] = typing.get_args(Quantization)
# How `inputs` says "no such file" (e.g. `normaliser: none`).
NOTHING = (None, "", "none")


@dataclass(frozen=True)
class SharedParams:
    seed: int = at_least(0, at_most=2**32 - 1)  # NumPy's and Keras's seeds are 32-bit


@dataclass(frozen=True)
class InputsParams:
    """The files a user brings, as params.yaml names them (paths relative to the workspace)."""

    model: str
    labels: str
    heldout: str
    folder: str = "."
    normaliser: str | None = None
    custom_objects: str | None = None
    allow_unsafe_deserialization: bool = False

    @classmethod
    def prepared(cls, data: dict[str, Any], where: str) -> dict[str, Any]:
        """`label_encoder`, the old name of `labels`, read as `labels`; `none` as no file."""
        data = dict(data)
        if "label_encoder" in data:
            encoder = data.pop("label_encoder")
            if data.setdefault("labels", encoder) != encoder:
                raise refuse(
                    where,
                    "names both labels and label_encoder (its old name); keep only labels",
                )
        if data.get("labels", "") in NOTHING:
            raise refuse(child(where, "labels"), "names no file; name your label file")
        for key in ("normaliser", "custom_objects"):
            if data.get(key) in NOTHING:
                data[key] = None
        return data


@dataclass(frozen=True)
class DemoModelParams:
    timesteps: int = at_least(1)
    features: int = at_least(1)
    classes: int = at_least(2)
    train_samples: int = at_least(1)
    heldout_samples: int = at_least(1)
    epochs: int = at_least(1)
    batch_size: int = at_least(1)


@dataclass(frozen=True)
class ConvertParams:
    quantization: Quantization
    representative_samples: int = at_least(1)
    timeout_seconds: float = more_than(0)
    batch_size: int = at_least(2)  # the second model's fixed batch; 1 is the first model's


@dataclass(frozen=True)
class LabelOrderParams:
    max_p_value: float = more_than(0, at_most=1)
    min_gain: float = at_least(0, at_most=1)  # a share of the held-out answers


@dataclass(frozen=True)
class ParityThresholds:
    """How far the candidate may stray from Keras on held-out data, for one quantization."""

    max_abs_diff: float = at_least(0)
    mean_abs_diff: float = at_least(0)
    min_top1_agreement: float = at_least(0, at_most=1)
    min_class_agreement: float = at_least(0, at_most=1)
    max_accuracy_drop: float = at_least(0, at_most=1)


@dataclass(frozen=True)
class ParityParams:
    label_order: LabelOrderParams
    thresholds: dict[Quantization, ParityThresholds]
    min_accuracy: float | None = at_least(0, at_most=1, default=None)


@dataclass(frozen=True)
class PromoteParams:
    remote: str
    tag_prefix: str
    golden_samples: int = at_least(1)
    golden_tolerance: float = at_least(0)
    push_timeout_seconds: float = more_than(0)
    orphan_wait_seconds: float = at_least(0)


@dataclass(frozen=True)
class CpuTargets:
    """Worker CPU per request over a bare invoke's, per body format."""

    float32: float = more_than(0)
    json: float = more_than(0)


@dataclass(frozen=True)
class BenchParams:
    quantizations: tuple[Quantization, ...]
    tflite_runtime: bool
    cpu_targets: CpuTargets
    peer_ours_own_venv: bool
    memory_limit_mb: float = at_least(1)
    predictions: int = at_least(1)
    http_requests: int = at_least(1)
    quantization_invokes: int = at_least(1)
    cpu_share: float = at_least(0.001)
    cpu_requests: int = at_least(1)
    cpu_requests_quota: int = at_least(1)
    peer_requests: int = at_least(1)
    peer_requests_quota: int = at_least(1)
    peer_clients: int = at_least(1)
    peer_warmup_requests: int = at_least(0)
    peer_bare_invokes: int = at_least(1)
    peer_phase_seconds: float = more_than(0)
    peer_start_deadline_seconds: float = more_than(0)
    peer_install_timeout_seconds: float = more_than(0)
