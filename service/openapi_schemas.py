"""JSON Schemas (OpenAPI 3.1) of the service's bodies, written from the live contract and limits.

Each bound a schema states (sample shape, labels, MAX_BATCH, the model's name and version) is
read from the objects the service enforces it with, so the document cannot drift from them.
With no ready model the shapes are unknown and the schemas say only what they can.
"""

from typing import Any

from service.inference_tensors import DATATYPE, INPUT_NAME, output_name
from service.lfs_pull import FAULTS
from service.limits import Limits
from service.predictor import Contract

NUMBER = {"type": "number"}
STRING = {"type": "string"}
UNKNOWN_SHAPE = {
    "type": "array",
    "description": "the sample's shape is the model's; no model is ready, see /api/health/",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nested_array(shape: tuple[int, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    """Nested JSON lists of exactly `shape`, numbers at the bottom."""
    schema = leaf
    for size in reversed(shape):
        schema = {"type": "array", "minItems": size, "maxItems": size, "items": schema}
    return schema


def _api_schemas(contract: Contract | None, limits: Limits) -> dict[str, Any]:
    key = contract.value_key if contract else "probability"
    label = {"type": "string", **({"enum": list(contract.labels)} if contract else {})}
    sample = nested_array(contract.sample_shape, NUMBER) if contract else UNKNOWN_SHAPE
    scored = {
        "type": "object",
        "required": ["label", key],
        "properties": {"label": label, key: NUMBER},
    }
    return {
        "Sample": sample,
        "PredictRequest": {
            "type": "object",
            "required": ["instances"],
            "properties": {
                "instances": {
                    "description": "one sample, or a batch of 1 to MAX_BATCH samples",
                    "oneOf": [
                        ref("Sample"),
                        {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": limits.max_batch,
                            "items": ref("Sample"),
                        },
                    ],
                }
            },
        },
        "Answer": {
            **scored,
            "required": [*scored["required"], "top_k"],
            "properties": {
                **scored["properties"],
                "top_k": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": len(contract.labels) if contract else 1000,
                    "items": scored,
                },
            },
        },
        "PredictResponse": {
            "type": "object",
            "required": ["predictions", "model_sha256", "model_version"],
            "properties": {
                "predictions": {
                    "type": "array",
                    "maxItems": limits.max_batch,
                    "items": ref("Answer"),
                },
                "model_sha256": STRING,
                "model_version": STRING,
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "expected"],
            "properties": {"error": STRING, "expected": STRING},
        },
        "Health": {
            "type": "object",
            "required": ["status", "predictor"],
            "properties": {
                "status": {"enum": ["ok", "unavailable"]},
                "predictor": {"enum": ["ready", "not ready"]},
                "reason": STRING,
                "fault": {"enum": list(FAULTS)},
                "model_sha256": STRING,
                "model_version": STRING,
                "runtime": STRING,
                "runtime_version": STRING,
                "samples_in_flight": {"type": "integer"},
                "uptime_seconds": NUMBER,
                "worker_pid": {"type": "integer"},
                "worker_memory_mb": NUMBER,
            },
        },
        "Metadata": {
            "type": "object",
            "required": [
                "model_name",
                "model_version",
                "model_sha256",
                "input",
                "limits",
                "labels",
            ],
            "properties": {
                "model_name": STRING,
                "model_version": STRING,
                "model_sha256": STRING,
                "input": {"type": "object"},
                "limits": {"type": "object"},
                "labels": {"type": "array", "items": label},
            },
        },
    }


def _tensor(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _parameters(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def _v2_tensor_schemas(contract: Contract | None, limits: Limits) -> dict[str, dict[str, Any]]:
    """The shape, data and names of the one input and output, or what is known without them."""
    if contract is None:
        array = {"type": "array"}
        return {
            "shape": array,
            "data": UNKNOWN_SHAPE,
            "binary_data_size": {"type": "integer"},
            "output_name": STRING,
            "input_shape": array,
            "output_shape": array,
        }
    batch_axis = {"type": "integer", "minimum": 1, "maximum": limits.max_batch}
    dims = [{"const": size} for size in contract.sample_shape]
    rank = len(dims) + 1
    flat = {"type": "array", "maxItems": limits.max_batch * contract.sample_size, "items": NUMBER}
    nested = {"type": "array", "maxItems": limits.max_batch}
    nested["items"] = nested_array(contract.sample_shape, NUMBER)
    return {
        "shape": {
            "type": "array",
            "prefixItems": [batch_axis, *dims],
            "items": False,
            "minItems": rank,
            "maxItems": rank,
        },
        "data": {"description": "row-major values, flat or nested", "oneOf": [flat, nested]},
        "binary_data_size": {
            "type": "integer",
            "multipleOf": contract.sample_bytes,
            "maximum": limits.max_batch * contract.sample_bytes,
        },
        "output_name": {"const": output_name(contract)},
        "input_shape": {"const": [-1, *contract.sample_shape]},
        "output_shape": {"const": [-1, len(contract.labels)]},
    }


def _v2_schemas(contract: Contract | None, limits: Limits, model: dict) -> dict[str, Any]:
    name = {"const": model["model_name"]} if contract else STRING
    tensors = _v2_tensor_schemas(contract, limits)
    datatype = {"const": DATATYPE}
    metadata = ["name", "datatype", "shape"]
    return {
        "V2Error": _tensor(["error"], error=STRING),
        "V2ServerMetadata": _tensor(
            ["name", "version", "extensions"],
            name=STRING,
            version=STRING,
            extensions={"type": "array", "items": STRING},
        ),
        "V2ModelMetadata": _tensor(
            ["name", "versions", "platform", "inputs", "outputs"],
            name=name,
            versions={"type": "array", "items": STRING},
            platform=STRING,
            inputs={
                "type": "array",
                "items": _tensor(
                    metadata,
                    name={"const": INPUT_NAME},
                    datatype=datatype,
                    shape=tensors["input_shape"],
                ),
            },
            outputs={
                "type": "array",
                "items": _tensor(
                    metadata,
                    name=tensors["output_name"],
                    datatype=datatype,
                    shape=tensors["output_shape"],
                ),
            },
        ),
        "V2InferenceRequest": _tensor(
            ["inputs"],
            id=STRING,
            parameters=_parameters(binary_data_output={"type": "boolean"}),
            inputs={
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": _tensor(
                    metadata,
                    name={"const": INPUT_NAME},
                    shape=tensors["shape"],
                    datatype=datatype,
                    data=tensors["data"],
                    parameters=_parameters(binary_data_size=tensors["binary_data_size"]),
                ),
            },
            outputs={
                "type": "array",
                "maxItems": 1,
                "items": _tensor(
                    ["name"],
                    name=tensors["output_name"],
                    parameters=_parameters(binary_data={"type": "boolean"}),
                ),
            },
        ),
        "V2InferenceResponse": _tensor(
            ["model_name", "model_version", "outputs"],
            model_name=name,
            model_version=STRING,
            id=STRING,
            outputs={
                "type": "array",
                "items": _tensor(
                    metadata,
                    name=tensors["output_name"],
                    datatype=datatype,
                    shape={"type": "array", "items": {"type": "integer"}},
                    data={"type": "array", "items": NUMBER},
                    parameters=_parameters(binary_data_size={"type": "integer"}),
                ),
            },
        ),
    }


def component_schemas(contract: Contract | None, limits: Limits, model: dict) -> dict[str, Any]:
    """Every schema the document's paths refer to."""
    return _api_schemas(contract, limits) | _v2_schemas(contract, limits, model)
