"""Read and decode a predict request's body, refusing what is malformed with a 4xx.

The server (gunicorn's gevent worker) parses the body lazily: a bad chunk, a client that
goes away mid-body or a body shorter than its Content-Length surfaces here, as one of the
server's parse errors or a socket error from wsgi.input.read(), or as missing bytes, and
becomes a 400 instead of a 500. Any other exception is a bug of ours and propagates: the app
answers it with a 500 and a log line, and the worker keeps serving.
"""

import re
import time

import numpy as np
import orjson
from gunicorn.http.errors import NoMoreData, ParseException

from service.errors import HTTPError
from service.json_samples import parse_samples
from service.limits import BodyLimits
from service.predictor import Contract

READ_CHUNK_BYTES = 256 << 10
YIELD_EVERY_BYTES = 1 << 20
YIELD_SECONDS = 1e-6
# Above this size a JSON body is parsed a sample at a time where it can be, and the worker
# yields between its long steps; below it, one parse of numbers costs a few ms of CPU.
LARGE_JSON_BYTES = 512 << 10
JSON_EXPECTED = 'a JSON object {"instances": [...]} with nested lists of numbers'
# JSON's literals true/false outside a string: booleans, which numpy would turn into 1 and 0.
BOOLEAN_LITERAL = re.compile(rb"(?<![\"\w])(?:true|false)(?![\"\w])")
# What reading a body raises when the client is at fault: malformed chunked encoding or any
# other request gunicorn cannot parse (InvalidChunkSize, ChunkMissingTerminator, ...), a body
# that ends before its length (NoMoreData), a connection reset or timed out (OSError).
CLIENT_BODY_FAULTS = (ParseException, NoMoreData, OSError)


def yield_to_other_requests() -> None:
    # Under the gevent worker time.sleep is gevent.sleep. Not sleep(0): that only requeues
    # this greenlet among the loop's callbacks, and gevent polls sockets again only every 50
    # callbacks, so a health check could wait out a whole batch. A timer, however short,
    # makes the loop poll sockets first. Under threads: a plain yield.
    time.sleep(YIELD_SECONDS)


def _yield_every_mebibyte(done: int, last_step: int) -> None:
    # Bytes already buffered are read without the event loop running: a large body that has
    # all arrived would be read in one go, holding health checks for ten times its CPU at 0.1.
    if done // YIELD_EVERY_BYTES != (done - last_step) // YIELD_EVERY_BYTES:
        yield_to_other_requests()


def parse_count(raw: str) -> int | None:
    """`raw` as a non-negative integer if it is at most 18 plain ASCII digits, else None."""
    # int() raises on what str.isdigit() alone lets through: superscripts such as "²" and
    # strings over 4300 digits.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def declared_length(environ: dict, limit: int) -> int | None:
    """The Content-Length as a number (None when chunked), refused if bad or over `limit`."""
    declared = environ.get("CONTENT_LENGTH") or ""
    expected = f"a body of at most {limit} bytes for this content type"
    if not declared:
        return None
    length = parse_count(declared.strip())
    if length is None:
        raise HTTPError(400, f"Content-Length {declared[:40]!r} is not a number", expected)
    if length > limit:  # closed, not read and discarded
        raise HTTPError(
            413,
            f"body of {length} bytes is too large",
            expected,
            headers=[("Connection", "close")],
        )
    return length


BODY_READ_KEY = "service.body_read"


def finish_unread_body(environ: dict, drain_limit: int) -> None:
    """After a refusal that left the body unread, consume it cheaply or have it closed.

    gunicorn 27 drains an unread body before the next request on the connection 1 KiB at
    a time, copying its whole read-ahead buffer on each step: for a shed 19 MB body that
    held the event loop, and health checks, for seconds. A body of a declared length up to
    `drain_limit` is read here in large steps and dropped, so the client gets its answer
    and keeps its connection; a larger or unbounded (chunked) one is marked `failed`, which
    makes gunicorn close the connection instead, as after a malformed chunk.
    """
    stream = environ.get("wsgi.input")
    declared = parse_count((environ.get("CONTENT_LENGTH") or "").strip())
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if environ.get(BODY_READ_KEY) or stream is None or not (declared or chunked):
        return
    if declared is not None and declared <= drain_limit:
        try:
            remaining = declared
            while remaining > 0:
                chunk = stream.read(min(READ_CHUNK_BYTES, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                _yield_every_mebibyte(declared - remaining, len(chunk))
            return
        except CLIENT_BODY_FAULTS:  # a client gone mid-body: nothing left to keep open
            pass
    if hasattr(stream, "failed"):
        stream.failed = True


def read_body(environ: dict, length: int | None, limit: int) -> bytearray:
    """The whole body, at most `limit` bytes; 400 when it is cut short or badly chunked."""
    stream = environ["wsgi.input"]
    wanted = limit + 1 if length is None else length
    # With a declared length the buffer is allocated once: growing it would copy it.
    body = bytearray(length) if length is not None else bytearray()
    received = 0
    try:
        while received < wanted:
            chunk = stream.read(min(READ_CHUNK_BYTES, wanted - received))
            if not chunk:
                break
            if length is None:
                body += chunk
            else:
                body[received : received + len(chunk)] = chunk
            received += len(chunk)
            _yield_every_mebibyte(received, len(chunk))
    except CLIENT_BODY_FAULTS as error:
        raise HTTPError(
            400,
            f"the request body could not be read ({type(error).__name__})",
            "a body that matches its Content-Length or valid chunked encoding",
        ) from None
    environ[BODY_READ_KEY] = received <= limit  # past the limit, bytes remain unread
    if length is not None and received < length:
        raise HTTPError(
            400,
            f"the body ended after {received} of the {length} bytes its Content-Length declares",
            "the whole body",
        )
    if len(body) > limit:
        raise HTTPError(413, "body is too large", f"a body of at most {limit} bytes")
    if not body:
        raise HTTPError(
            400, "the request body is empty", 'JSON {"instances": [...]} or raw float32 bytes'
        )
    return body


def json_instances(
    body: bytearray, limits: BodyLimits, sample_shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """The 'instances' of a JSON body, refusing structure that cannot be a batch.

    A body of numbers and lists alone (no string but the key, no true/false/null: no `u` or
    `l` byte) goes straight to float32; a large one of the contract's `sample_shape` is
    parsed a sample at a time, yielding to other requests in between. Anything else takes
    the checked path, which names the problem.
    """
    large = len(body) > LARGE_JSON_BYTES
    only_numbers = _quotes_at_most_two(body) and body.find(b"u") < 0 and body.find(b"l") < 0
    if large and only_numbers and sample_shape is not None:
        samples = parse_samples(body, sample_shape, limits, yield_to_other_requests)
        if samples is not None:
            return samples
    # Lists and values are counted in small bodies too: counting costs little, while parsing
    # a small body of nested empty lists into an array costs CPU that no health check can cut
    # into, and a few such bodies at once add up.
    # Strings and objects in a small body cost little, and the parse below names them.
    problem = limits.json_structure_problem(body) if large else limits.json_lists_problem(body)
    if problem:
        raise HTTPError(413, problem, JSON_EXPECTED)
    if large:
        yield_to_other_requests()  # each long step of a large body lets health checks in
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise HTTPError(400, f"invalid JSON: {error}", JSON_EXPECTED) from None
    if not isinstance(document, dict) or "instances" not in document:
        raise HTTPError(400, "the JSON body has no 'instances' key", JSON_EXPECTED)
    instances = document.pop("instances")
    del document
    if large:
        yield_to_other_requests()
    try:
        if only_numbers:
            return np.asarray(instances, dtype=np.float32)
        if BOOLEAN_LITERAL.search(body):
            raise HTTPError(
                400, "'instances' holds true or false; booleans are not numbers", JSON_EXPECTED
            )
        values = np.asarray(instances)
    except (ValueError, TypeError):
        raise HTTPError(
            400, "'instances' is ragged: rows of different lengths", JSON_EXPECTED
        ) from None
    if values.dtype.kind not in "iuf":  # strings, objects, nulls
        raise HTTPError(400, "'instances' holds values that are not numbers", JSON_EXPECTED)
    return values


def _quotes_at_most_two(body: bytearray) -> bool:
    # Three memchr scans instead of a count over the whole body.
    first = body.find(b'"')
    second = body.find(b'"', first + 1) if first >= 0 else -1
    return second < 0 or body.find(b'"', second + 1) < 0


def float32_instances(body: bytearray, contract: Contract, sample_bytes: int) -> np.ndarray:
    """Raw little-endian float32 samples as a (n, *sample_shape) array."""
    if len(body) % sample_bytes:
        dims = " x ".join(str(d) for d in contract.sample_shape)
        raise HTTPError(
            400,
            f"float32 body of {len(body)} bytes is not whole samples",
            f"a multiple of {sample_bytes} bytes ({dims} little-endian float32 per sample)",
        )
    return np.frombuffer(body, dtype="<f4").reshape(-1, *contract.sample_shape)
