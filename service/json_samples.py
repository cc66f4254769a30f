"""Parse a large numbers-only JSON batch one sample at a time, yielding between samples.

orjson parses a 64-sample batch (19 MB for a 65 x 243 sample) in one call of about 70 ms of
CPU, 0.7 s at 0.1 CPU, and the gevent worker's one thread answers nothing meanwhile. Here
the `instances` array is cut into its samples by counting list openers (a sample of shape
(65, 243) opens 66 lists), each cut is parsed on its own, and the event loop runs between
cuts, so no step costs more than one sample's parse (about 1 ms of CPU).

Cutting is a guess that each piece confirms: a piece must parse as one JSON value of the
contract's sample shape, and the pieces, joined by the commas that were cut out, are then
exactly the array's text. Anything else (other shapes, nesting, keys, sizes) returns None,
and the caller takes the whole-body path that names the problem.
"""

import math
import re
from collections.abc import Callable

import numpy as np
import orjson

from service.limits import JSON_BYTES_PER_NUMBER, JSON_SLACK_BYTES, BodyLimits

# The only object a numbers-only batch may be: {"instances": [ ... ]}, with JSON's whitespace
# (not regex's \s, which also takes \f and \v that orjson refuses).
BATCH_OPENING = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"instances"[ \t\r\n]*:[ \t\r\n]*\[')
BATCH_CLOSING = re.compile(rb"\][ \t\r\n]*\}[ \t\r\n]*\Z")
CLOSING_WINDOW_BYTES = 256
TAIL_WINDOW_BYTES = 64
WHITESPACE = b" \t\r\n"


def lists_per_sample(sample_shape: tuple[int, ...]) -> int:
    """How many JSON lists one sample opens: itself and every list nested inside it."""
    return sum(math.prod(sample_shape[:depth]) for depth in range(len(sample_shape)))


def parse_samples(
    body: bytearray,
    sample_shape: tuple[int, ...],
    limits: BodyLimits,
    yield_between: Callable[[], None],
) -> np.ndarray | None:
    """The batch (n, *sample_shape) as float32, parsed sample by sample; None if irregular.

    The caller has checked that `body` holds no string but the key and no true/false/null.
    """
    opening = BATCH_OPENING.match(body)
    tail_start = max(0, len(body) - CLOSING_WINDOW_BYTES)
    closing = BATCH_CLOSING.search(body, tail_start)
    if opening is None or closing is None:
        return None
    array_end = closing.start()  # the batch's own "]"
    openers = lists_per_sample(sample_shape)
    # Bounds the fallback enforces anyway: more samples than its list count allows are
    # refused there, and a piece past one sample's largest text cannot be one sample.
    most_samples = (limits.max_brackets - 1) // openers
    most_piece_bytes = math.prod(sample_shape) * JSON_BYTES_PER_NUMBER + JSON_SLACK_BYTES
    start = body.find(b"[", opening.end(), array_end)
    if start < 0 or body[opening.end() : start].strip(WHITESPACE):
        return None  # an empty batch, or something before the first sample
    samples: list[np.ndarray] = []
    with memoryview(body) as view:
        while start >= 0:
            if len(samples) == most_samples:
                return None
            following = start
            for _ in range(openers):
                following = body.find(b"[", following + 1, array_end)
                if following < 0:
                    break
            end = array_end if following < 0 else following
            sample = _one_sample(view, start, end, following >= 0, most_piece_bytes)
            if sample is None or sample.shape != sample_shape:
                return None
            samples.append(sample)
            start = following
            yield_between()
    return np.stack(samples)


def _one_sample(
    view: memoryview, start: int, end: int, comma_expected: bool, most_bytes: int
) -> np.ndarray | None:
    if end - start > most_bytes:
        return None
    # Trailing whitespace, then (between samples) the one comma that separates them, looked
    # for in a short window: a longer run of whitespace takes the whole-body path.
    tail = bytes(view[max(start, end - TAIL_WINDOW_BYTES) : end])
    kept = tail.rstrip(WHITESPACE)
    if comma_expected:
        if not kept.endswith(b","):
            return None
        kept = kept[:-1]
    end -= len(tail) - len(kept)
    try:
        return np.asarray(orjson.loads(view[start:end]), dtype=np.float32)
    except (orjson.JSONDecodeError, ValueError, TypeError):  # not one value, or ragged
        return None
