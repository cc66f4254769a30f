"""An MLServer custom runtime (an MLModel subclass) for the candidate bundle on LiteRT.

Open Inference Protocol v2: one FP32 input tensor [n, *sample_shape], one FP32 output tensor
`probabilities` [n, classes] and one BYTES output `label` [n]. The bundle folder is the model's
`parameters.uri` in model-settings.json.
"""

from lite_classifier import LiteClassifier
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class LiteRuntime(MLModel):
    """Loads the bundle once; answers each request with one batch-1 invoke() per sample."""

    async def load(self) -> bool:
        self.classifier = LiteClassifier(self.settings.parameters.uri)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        samples = NumpyCodec.decode_input(payload.inputs[0])
        probabilities = self.classifier.probabilities(samples)
        labels = [answer["label"] for answer in self.classifier.top1(probabilities)]
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("probabilities", probabilities),
                StringCodec.encode_output("label", labels),
            ],
        )
