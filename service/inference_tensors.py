"""Open Inference Protocol tensors: a v2 inference request's body to a batch, outputs to a body.

The request is a JSON object, optionally followed by raw tensor bytes (the binary tensor data
extension): the `Inference-Header-Content-Length` header says where the JSON ends, and each
input with a `binary_data_size` parameter takes that many bytes from what follows, in order.
The service's model has one FP32 input of shape [-1, *sample_shape] and one FP32 output of
shape [-1, classes]; anything else a request names is refused with a 4xx naming the problem.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.body import LARGE_JSON_BYTES, yield_to_other_requests
from service.errors import HTTPError
from service.limits import BodyLimits, Limits
from service.predictor import Contract
from service.tensor_json import split_flat_data

DATATYPE = "FP32"
INPUT_NAME = "input"
# A v2 request's JSON holds a few objects and strings around its data (inputs, outputs,
# parameters, names, datatypes); counted before any header is parsed, with the limits'
# bracket and comma bounds, so no body can expand into more lists than a full batch has.
MAX_OBJECTS = 16
MAX_QUOTES = 128
MAX_EXTRA_SEPARATORS = 64
REQUEST_EXPECTED = (
    'a JSON object {"inputs": [{"name", "shape", "datatype": "FP32", "data"}]} '
    "(data row-major, flat or nested, or binary_data_size bytes after the JSON)"
)


@dataclass(frozen=True)
class InferenceRequest:
    """What a v2 inference request asks for: its batch, which outputs, in what form."""

    batch: np.ndarray
    request_id: str | None
    binary_output: bool
    output_requested: bool


def output_name(contract: Contract) -> str:
    """The output's name: what /api/predict/ calls each value (`probability` or `score`)."""
    return contract.value_key


def expected_shape(contract: Contract) -> str:
    return "[n, " + ", ".join(str(d) for d in contract.sample_shape) + "] with n >= 1"


def _structure_problem(header: bytes, body_limits: BodyLimits, large: bool) -> str | None:
    """Why `header` cannot be a request within the limits, by counting, or None. Lists and
    values at any size (a parse would build them first); strings and objects past
    LARGE_JSON_BYTES only, as in service/body.py."""
    problem = body_limits.json_lists_problem(
        header, other_lists=MAX_OBJECTS, other_values=MAX_EXTRA_SEPARATORS
    )
    if problem or not large:
        return problem
    if header.count(b"{") > MAX_OBJECTS or header.count(b'"') > MAX_QUOTES:
        return "more JSON objects or strings than an inference request holds"
    return None


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise HTTPError(400, f"{what} is not a JSON object", REQUEST_EXPECTED)
    return value


def _shape(tensor: dict, contract: Contract, limits: Limits) -> tuple[int, ...]:
    shape = tensor.get("shape")
    wanted = (len(contract.sample_shape) + 1, contract.sample_shape)
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or (len(shape), tuple(shape[1:])) != wanted
        or shape[0] < 1
    ):
        raise HTTPError(
            400, f"input shape {str(shape)[:80]} is not the model's", expected_shape(contract)
        )
    if shape[0] > limits.max_batch:
        raise HTTPError(
            413, f"{shape[0]} samples in one request", f"at most {limits.max_batch} samples"
        )
    return tuple(shape)


def _json_data(data: Any, count: int) -> np.ndarray:
    try:
        values = np.asarray(data)
    except (ValueError, TypeError):
        raise HTTPError(400, "input data is ragged: lists of different lengths", "") from None
    if values.dtype.kind not in "iuf":  # booleans, strings, nulls, objects
        raise HTTPError(400, "input data holds values that are not numbers", REQUEST_EXPECTED)
    if values.size != count:
        raise HTTPError(
            400, f"input data has {values.size} values, its shape says {count}", "as many"
        )
    with np.errstate(over="ignore"):  # past float32's range: infinity, refused as such later
        return values.astype(np.float32, copy=False)


def _tensor_values(tensor: dict, shape: tuple[int, ...], binary: memoryview, streamed):
    """The input's values as float32 in `shape`, and the binary bytes it used.

    `streamed` is its data when parsed apart from the rest (service/tensor_json.py), or None.
    """
    count = int(np.prod(shape))
    parameters = _object(tensor.get("parameters") or {}, "the input's parameters")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in tensor:
            raise HTTPError(400, "the input has neither data nor binary_data_size", "one of them")
        data = tensor["data"] if streamed is None else streamed
        return _json_data(data, count).reshape(shape), 0
    if not isinstance(size, int) or isinstance(size, bool) or size != 4 * count:
        raise HTTPError(
            400,
            f"binary_data_size {str(size)[:20]} does not fit shape {list(shape)}",
            f"{4 * count} bytes: little-endian float32, row-major",
        )
    if size > len(binary):
        raise HTTPError(
            400,
            f"the body holds {len(binary)} bytes of binary data, not {size}",
            "binary_data_size bytes after the JSON header (Inference-Header-Content-Length)",
        )
    values = np.frombuffer(binary[:size], dtype="<f4").reshape(shape)
    return values, size


def _binary_output(document: dict, outputs: Any, name: str) -> tuple[bool, bool]:
    """(binary, requested): how the request asks for the one output, if it names it."""
    parameters = _object(document.get("parameters") or {}, "the request's parameters")
    binary = parameters.get("binary_data_output", False)
    if outputs is None:
        return bool(binary), False
    if not isinstance(outputs, list) or len(outputs) != 1:
        raise HTTPError(400, "outputs must list the model's one output", f'[{{"name": "{name}"}}]')
    output = _object(outputs[0], "the requested output")
    if output.get("name") != name:
        raise HTTPError(
            400, f"unknown output {str(output.get('name'))[:60]!r}", f"the output {name!r}"
        )
    output_parameters = _object(output.get("parameters") or {}, "the output's parameters")
    if output_parameters.get("classification"):
        raise HTTPError(400, "the classification extension is not supported", "raw outputs")
    return bool(output_parameters.get("binary_data", binary)), True


def parse_request(
    body: bytes | bytearray,
    header_length: int | None,
    contract: Contract,
    limits: Limits,
    body_limits: BodyLimits,
) -> InferenceRequest:
    """The batch and output choices of a v2 request body; HTTPError 4xx naming what is wrong."""
    if header_length is not None and header_length > len(body):
        raise HTTPError(
            400,
            f"Inference-Header-Content-Length {header_length} is past the body's end",
            f"at most the body's {len(body)} bytes",
        )
    with memoryview(body) as view:
        header = view[:header_length] if header_length is not None else view
        streamed = None
        header_bytes = bytes(header)
        large = len(header) > LARGE_JSON_BYTES
        if large:
            most_values = limits.max_batch * contract.sample_size
            split = split_flat_data(header_bytes, most_values, yield_to_other_requests)
            if split is not None:
                header, streamed = split
        # Counted in small headers too, as in service/body.py: microseconds, against a parse
        # of nested empty lists that would hold the worker for tens of ms.
        if streamed is None:
            problem = _structure_problem(header_bytes, body_limits, large)
            if problem:
                raise HTTPError(413, problem, REQUEST_EXPECTED)
        del header_bytes
        try:
            document = orjson.loads(header)
        except orjson.JSONDecodeError as error:
            if streamed is None:
                raise HTTPError(400, f"invalid JSON: {error}", REQUEST_EXPECTED) from None
            # A "data": [ inside a string was cut: the whole-body parse decides.
            streamed = None
            try:
                document = orjson.loads(view[:header_length] if header_length else view)
            except orjson.JSONDecodeError as error:
                raise HTTPError(400, f"invalid JSON: {error}", REQUEST_EXPECTED) from None
        document = _object(document, "the request")
        inputs = document.get("inputs")
        if not isinstance(inputs, list) or len(inputs) != 1:
            raise HTTPError(400, "inputs must list the model's one input", REQUEST_EXPECTED)
        tensor = _object(inputs[0], "the input")
        if tensor.get("name") != INPUT_NAME:
            raise HTTPError(
                400, f"unknown input {str(tensor.get('name'))[:60]!r}", f"the input {INPUT_NAME!r}"
            )
        if tensor.get("datatype") != DATATYPE:
            raise HTTPError(
                400, f"datatype {str(tensor.get('datatype'))[:20]!r} is not the input's", DATATYPE
            )
        shape = _shape(tensor, contract, limits)
        binary = view[header_length:] if header_length is not None else view[:0]
        values, used = _tensor_values(tensor, shape, binary, streamed)
        if used != len(binary):
            raise HTTPError(
                400,
                f"{len(binary) - used} bytes after the JSON header belong to no input",
                "binary data only for inputs with binary_data_size",
            )
        values = values.copy()  # own the numbers: the body's buffer is released here
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise HTTPError(400, "the request id is not a string", "a string, or no id")
    binary_output, requested = _binary_output(
        document, document.get("outputs"), output_name(contract)
    )
    return InferenceRequest(values, request_id, binary_output, requested)


def response_body(
    request: InferenceRequest, outputs: np.ndarray, contract: Contract, model: dict[str, str]
) -> tuple[bytes, int | None]:
    """The response's bytes, and the JSON header's length when binary data follows it."""
    output: dict[str, Any] = {
        "name": output_name(contract),
        "datatype": DATATYPE,
        "shape": list(outputs.shape),
    }
    raw = outputs.astype("<f4", copy=False).tobytes() if request.binary_output else b""
    if request.binary_output:
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = outputs.ravel().tolist()
    header = {**model, **({"id": request.request_id} if request.request_id is not None else {})}
    payload = orjson.dumps({**header, "outputs": [output]})
    return (payload + raw, len(payload)) if request.binary_output else (payload, None)
