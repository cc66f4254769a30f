"""GET /openapi.json: an OpenAPI 3.1 document of every route, from the live contract and limits.

The app builds it once per worker from the same Contract, Limits and BodyLimits its handlers
enforce (service/openapi_schemas.py), so a sample shape, MAX_BATCH or body limit the document
states is the one a request meets.
"""

from typing import Any

from service.inference_protocol import HEADER_LENGTH_NAME, SERVER_VERSION, InferenceProtocol
from service.limits import BodyLimits, Limits
from service.openapi_schemas import component_schemas, ref
from service.predict import FLOAT32_TYPE, JSON_TYPE
from service.predictor import Predictor

OPENAPI_VERSION = "3.1.0"
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds until the work in flight is likely done",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _json(schema_name: str) -> dict[str, Any]:
    return {JSON_TYPE: {"schema": ref(schema_name)}}


def _json_object() -> dict[str, Any]:
    return {JSON_TYPE: {"schema": {"type": "object"}}}


def _responses(ok: str, ok_schema: str, errors: dict[int, str], error_schema: str) -> dict:
    responses: dict[str, Any] = {"200": {"description": ok, "content": _json(ok_schema)}}
    for status, why in errors.items():
        responses[str(status)] = {"description": why, "content": _json(error_schema)}
        if status == 503:
            responses[str(status)]["headers"] = RETRY_AFTER
    return responses


def _api_paths(limits: Limits, body_limits: BodyLimits | None, default_top_k: int, labels: int):
    json_limit = body_limits.json_bytes if body_limits else limits.max_body_bytes
    float32_limit = body_limits.float32_bytes if body_limits else limits.max_body_bytes
    top_k = {"type": "integer", "minimum": 1, "maximum": labels or 1000}
    refusals = {
        400: "a malformed body, a wrong shape, non-finite values or a bad top_k",
        413: f"a body over its limit or more than MAX_BATCH ({limits.max_batch}) samples",
        415: f"a content type other than {JSON_TYPE} or {FLOAT32_TYPE}",
        503: "no model is ready, or the worker is at capacity (retry after Retry-After)",
    }
    health = _responses("the model is loaded and serving", "Health", {}, "Health")
    health["503"] = {
        "description": "the model cannot be served; the body says why",
        "content": _json("Health"),
    }
    return {
        "/api/health/": {
            "get": {
                "summary": "What the worker checked: model, runtime, memory",
                "responses": health,
            },
        },
        "/api/metadata/": {
            "get": {
                "summary": "The model's contract, limits, labels and release verdicts",
                "responses": _responses(
                    "the contract", "Metadata", {503: "no model is ready"}, "Error"
                ),
            },
        },
        "/api/predict/": {
            "post": {
                "summary": "Labels and values for one sample or a batch",
                "parameters": [
                    {
                        "name": "top_k",
                        "in": "query",
                        "description": f"labels listed per answer (default {default_top_k})",
                        "schema": top_k,
                    }
                ],
                "requestBody": {
                    "required": True,
                    "description": f"JSON at most {json_limit} bytes; float32 at most "
                    f"{float32_limit} bytes",
                    "content": {
                        JSON_TYPE: {"schema": ref("PredictRequest")},
                        FLOAT32_TYPE: {
                            "schema": {
                                "type": "string",
                                "format": "binary",
                                "description": "little-endian float32 samples, row-major, "
                                f"at most {float32_limit} bytes",
                            }
                        },
                    },
                },
                "responses": _responses(
                    "one answer per sample", "PredictResponse", refusals, "Error"
                ),
            },
        },
    }


def _v2_paths(limits: Limits, body_limits: BodyLimits | None) -> dict[str, Any]:
    limit = body_limits.json_bytes if body_limits else limits.max_body_bytes
    ready = {503: "no model is ready"}
    model_errors = {404: "no model of that name or version", **ready}
    infer_errors = {
        400: "a wrong input name, datatype, shape or data, or a malformed header",
        404: "no model of that name or version",
        413: f"a body over {limit} bytes or more than MAX_BATCH ({limits.max_batch}) samples",
        415: "a compressed body (Content-Encoding)",
        503: "no model is ready, or the worker is at capacity (retry after Retry-After)",
    }
    infer = {
        "summary": "Outputs for a batch of inputs (JSON tensors or the binary tensor extension)",
        "parameters": [
            {
                "name": HEADER_LENGTH_NAME,
                "in": "header",
                "description": "length of the JSON that starts the body; binary data follows",
                "schema": {"type": "integer", "minimum": 0},
            }
        ],
        "requestBody": {
            "required": True,
            "description": f"at most {limit} bytes",
            "content": {
                JSON_TYPE: {"schema": ref("V2InferenceRequest")},
                FLOAT32_TYPE: {
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "description": "a V2InferenceRequest JSON, then each input's "
                        "binary_data_size bytes (little-endian float32, row-major)",
                    }
                },
            },
        },
        "responses": _responses("the outputs", "V2InferenceResponse", infer_errors, "V2Error"),
    }
    infer["responses"]["200"]["content"][FLOAT32_TYPE] = {
        "schema": {"type": "string", "format": "binary"}
    }
    infer["responses"]["200"]["headers"] = {
        HEADER_LENGTH_NAME: {
            "description": "present when binary output follows the JSON: the JSON's length",
            "schema": {"type": "integer"},
        }
    }
    ok = {"type": "object"}
    paths: dict[str, Any] = {
        "/v2": {
            "get": {
                "summary": "Server metadata",
                "responses": _responses("the server", "V2ServerMetadata", {}, "V2Error"),
            }
        },
        "/v2/health/live": {
            "get": {
                "summary": "The server answers",
                "responses": {
                    "200": {"description": "live", "content": {JSON_TYPE: {"schema": ok}}}
                },
            }
        },
        "/v2/health/ready": {
            "get": {
                "summary": "The model is ready",
                "responses": _responses("ready", "V2ServerMetadata", ready, "V2Error"),
            }
        },
    }
    paths["/v2/health/ready"]["get"]["responses"]["200"]["content"] = {JSON_TYPE: {"schema": ok}}
    name = {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    for prefix, parameters in (
        ("/v2/models/{model_name}", [name]),
        ("/v2/models/{model_name}/versions/{model_version}", [name, version]),
    ):
        paths[prefix] = {
            "parameters": parameters,
            "get": {
                "summary": "Model metadata",
                "responses": _responses(
                    "the model's tensors", "V2ModelMetadata", model_errors, "V2Error"
                ),
            },
        }
        ready_responses = _responses("ready", "V2Error", model_errors, "V2Error")
        ready_responses["200"]["content"] = {JSON_TYPE: {"schema": ok}}
        paths[f"{prefix}/ready"] = {
            "parameters": parameters,
            "get": {"summary": "The model is ready", "responses": ready_responses},
        }
        paths[f"{prefix}/infer"] = {"parameters": parameters, "post": infer}
    return paths


def openapi_document(
    predictor: Predictor | None,
    limits: Limits,
    body_limits: BodyLimits | None,
    default_top_k: int,
    protocol: InferenceProtocol,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service as this worker runs it."""
    contract = predictor.contract if predictor else None
    model = protocol.model()
    labels = len(contract.labels) if contract else 0
    paths = _api_paths(limits, body_limits, default_top_k, labels) | _v2_paths(limits, body_limits)
    paths["/openapi.json"] = {
        "get": {
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _json_object()}},
        }
    }
    for operations in paths.values():  # every GET route answers HEAD too, without a body
        if "get" in operations:
            operations["head"] = {
                "summary": operations["get"]["summary"] + " (headers only)",
                "responses": {
                    status: {"description": response["description"]}
                    for status, response in operations["get"]["responses"].items()
                },
            }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "TensorFlow Lite classifier",
            "version": model["model_version"] or SERVER_VERSION,
            "description": (
                (
                    f"Serves model {model['model_name']!r} version {model['model_version']!r}: "
                    f"{contract.describe()}."
                    if contract
                    else "No model is ready (see /api/health/)."
                )
                + f" At most {limits.max_batch} samples (MAX_BATCH) per request; past "
                f"{limits.inflight_samples} samples in flight a request is answered 503 with "
                "Retry-After. /v2 is the Open Inference Protocol (REST, binary tensor "
                "extension); the /api/ paths also answer without their final slash."
            ),
        },
        "paths": paths,
        "components": {"schemas": component_schemas(contract, limits, model)},
    }
