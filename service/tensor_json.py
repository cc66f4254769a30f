"""Parse a large v2 request's flat `data` array a chunk at a time, yielding between chunks.

orjson parses a 64-sample request (19 MB of flat numbers) in one call, and numpy then turns
its million floats into an array: about 0.2 s of CPU, 2 s at 0.1 CPU, with the gevent
worker answering nothing meanwhile. Here the one `"data": [` array of numbers is cut at
commas into pieces of about 128 KiB (some 6,500 numbers), each parsed on its own with the
event loop running in between, and the rest of the request is parsed with that array left
empty. No more numbers than `most_values` are parsed, so memory stays bounded by the batch.

Only the protocol's flat (row-major) form of numbers is taken this way; nested data, a
string, `true`, or anything irregular returns None and the caller takes the whole-body path
(its structure check, then one parse), which names the problem.
"""

import re
from collections.abc import Callable

import numpy as np
import orjson

DATA_OPENING = re.compile(rb'"data"[ \t\r\n]*:[ \t\r\n]*\[')
CHUNK_BYTES = 128 << 10
# Bytes that cannot be in a list of numbers but are in strings, true, false, null, objects.
NOT_IN_NUMBERS = (b'"', b"t", b"f", b"n", b"{")


def split_flat_data(
    header: bytes, most_values: int, yield_between: Callable[[], None]
) -> tuple[bytes, np.ndarray] | None:
    """(the header with its data array emptied, that array as float32), or None if irregular."""
    opening = DATA_OPENING.search(header)
    if opening is None:
        return None
    start = opening.end()
    end = header.find(b"]", start)
    if end < 0 or header.find(b"[", start, end) >= 0:  # nested data: the whole-body path
        return None
    if DATA_OPENING.search(header, end) is not None:  # which array is the input's: unclear
        return None
    pieces: list[np.ndarray] = []
    parsed = 0
    position = start
    while position < end:
        cut = header.find(b",", min(position + CHUNK_BYTES, end), end)
        cut = end if cut < 0 else cut
        piece = header[position:cut]
        if any(piece.find(byte) >= 0 for byte in NOT_IN_NUMBERS):
            return None
        try:
            values = orjson.loads(b"[" + piece + b"]")
            with np.errstate(over="ignore"):  # past float32's range: infinity, refused later
                pieces.append(np.asarray(values, dtype=np.float32))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            return None
        parsed += len(values)
        if not values or parsed > most_values:  # a stray comma, or more than a batch holds
            return None
        position = cut + 1
        yield_between()
    data = np.concatenate(pieces) if pieces else np.empty(0, dtype=np.float32)
    return header[:start] + header[end:], data
