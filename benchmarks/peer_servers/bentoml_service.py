"""A BentoML service for the candidate bundle on LiteRT (bentoml serve bentoml_service:LiteService).

BentoML's JSON: POST /predict with {"instances": [sample, ...]}; the answer is a list of
{label, probability}, as the service answers. The bundle folder comes from $MODEL_DIR.
"""

import os

import bentoml
import numpy as np
from lite_classifier import LiteClassifier


@bentoml.service
class LiteService:
    """Loads the bundle once per worker; one batch-1 invoke() per sample."""

    def __init__(self) -> None:
        self.classifier = LiteClassifier(os.environ["MODEL_DIR"])

    @bentoml.api
    def predict(self, instances: np.ndarray) -> list[dict]:
        return self.classifier.top1(self.classifier.probabilities(instances))
