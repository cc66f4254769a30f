"""What the live service must answer: parity's own outputs for the held-out samples.

The outputs are this candidate's (parity saved them with its sha256); the samples are the
held-out set's, raw, as a client sends them.
"""

from dataclasses import dataclass

import numpy as np

from pipeline.gate.watch import GateFailure
from pipeline.inputs.files import InputPaths
from pipeline.params.sections import InputsParams
from pipeline.paths import Workspace
from pipeline.verdicts import read_json
from service.predictor import Contract


@dataclass(frozen=True)
class ExpectedAnswers:
    """Raw held-out samples, the candidate's outputs for them in parity, its labels in output
    order, its sha256, and what an answer calls the model's value (`Contract.value_key`)."""

    samples: np.ndarray
    probabilities: np.ndarray
    labels: tuple[str, ...]
    model_sha256: str
    value_key: str


def expected_answers(
    workspace: Workspace, inputs: InputsParams, candidate_sha256: str
) -> ExpectedAnswers:
    """The held-out samples and parity's outputs for them; GateFailure when parity has not
    run or its outputs are for another candidate."""
    paths = InputPaths.from_params(inputs, workspace)
    if not workspace.parity_predictions_path.is_file():
        raise GateFailure(
            f"no parity predictions at {workspace.parity_predictions_path}; run `dvc repro parity`"
        )
    with np.load(workspace.parity_predictions_path) as predictions:
        if str(predictions["candidate_sha256"]) != candidate_sha256:
            raise GateFailure("parity's predictions are for another candidate; run parity again")
        probabilities = predictions["probabilities"]
    with np.load(paths.heldout, allow_pickle=False) as heldout:
        samples = heldout["X"].astype(np.float32)
    contract = Contract.from_manifest(read_json(workspace.candidate_dir / "manifest.json"))
    return ExpectedAnswers(
        samples, probabilities, tuple(contract.labels), candidate_sha256, contract.value_key
    )
