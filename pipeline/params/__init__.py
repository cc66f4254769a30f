"""params.yaml, read once at the start of every stage and command into typed sections.

One frozen dataclass per section, a stage's plus `shared` (pipeline.params.sections,
pipeline.params.gate). A misspelt key, a missing one or a value of the wrong kind is refused
there, naming the key (pipeline.params.reading), so no run stops halfway on a typo.
"""

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from pipeline.params.gate import GateParams, Plan
from pipeline.params.reading import ParamsError, read_section, refuse
from pipeline.params.sections import (
    QUANTIZATIONS,
    BenchParams,
    ConvertParams,
    DemoModelParams,
    InputsParams,
    ParityParams,
    PromoteParams,
    SharedParams,
)
from pipeline.params.unique_keys import RepeatedKey, load_unique
from pipeline.paths import Workspace

__all__ = ["QUANTIZATIONS", "GateParams", "Params", "ParamsError", "Plan", "load_params"]


@dataclass(frozen=True)
class Params:
    """Every section of params.yaml, typed; `data` is the file as plain data, for the verdicts
    and the release manifest that record it."""

    shared: SharedParams
    inputs: InputsParams
    demo_model: DemoModelParams
    convert: ConvertParams
    parity: ParityParams
    promote: PromoteParams
    gate: GateParams
    bench: BenchParams
    data: dict[str, Any] = field(
        default_factory=dict, repr=False, compare=False, metadata={"not_a_key": True}
    )

    @classmethod
    def read(cls, data: Any) -> "Params":
        """The typed sections of params.yaml's parsed `data`; ParamsError naming what is wrong."""
        if not isinstance(data, dict):
            raise refuse("", f"must map each section to its keys, got {data!r}")
        params = replace(read_section(cls, data, ""), data=copy.deepcopy(data))
        params.check()
        return params

    def check(self) -> None:
        """What no one section can say alone: keys that name an entry of another."""
        gate = self.gate
        if not gate.plans:
            raise refuse(
                "gate.plans",
                "names no plan; give at least the one gate.plan names, with its memory_mb, "
                "cpu_share, price_usd_month, max_instances and max_peak_memory_mb",
            )
        if gate.plan not in gate.plans:
            raise refuse(
                f"gate.plan={gate.plan!r}",
                f"is not in gate.plans; use one of {', '.join(gate.plans)}",
            )
        if self.convert.quantization not in self.parity.thresholds:
            raise refuse(
                "parity.thresholds",
                f"has no entry for convert.quantization {self.convert.quantization!r}; add one",
            )


def load_params(workspace: Workspace) -> Params:
    """The workspace's params.yaml, typed and checked; ParamsError naming any key that is wrong."""
    try:
        with open(workspace.params_path, encoding="utf-8") as params_file:
            data = load_unique(params_file)
    except RepeatedKey as error:
        raise ParamsError(f"params.yaml: {error}") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"params.yaml is not valid YAML: {error}") from None
    return Params.read(data)
