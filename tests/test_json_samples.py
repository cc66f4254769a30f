"""Sample-by-sample JSON parsing: what it returns is what the whole body says, or nothing."""

import numpy as np
import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.json_samples import lists_per_sample, parse_samples
from service.limits import BodyLimits, Limits
from service.predictor import Contract

SHAPE = (3, 4)
CONTRACT = Contract(sample_shape=SHAPE, labels=("a", "b"), output_kind="probability")
LIMITS = BodyLimits.for_contract(CONTRACT, Limits(max_batch=5))
# Pieces of a numbers-only batch, so that mutated bodies stay on the sample-by-sample path.
PIECES = [b"1,", b",1", b"[", b"]", b",", b"],[", b"[1],", b" ", b"\n", b"0", b"-", b"e", b"."]


def batch_text(samples: np.ndarray) -> bytes:
    return orjson.dumps({"instances": samples.tolist()})


def whole_body_batch(body: bytes) -> np.ndarray | None:
    """The batch orjson and numpy make of the whole body, or None if it is not one."""
    try:
        with np.errstate(over="ignore"):  # 1e99 becomes inf in float32, as in the service
            values = np.asarray(orjson.loads(body)["instances"], dtype=np.float32)
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError):
        return None
    return values if values.shape[1:] == SHAPE and len(values) else None


def test_lists_per_sample_counts_every_list_a_sample_opens():
    assert [lists_per_sample(shape) for shape in [(7,), (65, 243), (2, 3, 4)]] == [1, 66, 9]


def test_a_regular_batch_is_parsed_with_a_yield_after_each_sample():
    samples = np.arange(5 * 12, dtype=np.float32).reshape(5, *SHAPE) / 7
    yields = []
    parsed = parse_samples(bytearray(batch_text(samples)), SHAPE, LIMITS, lambda: yields.append(1))
    assert np.array_equal(parsed, samples) and len(yields) == 5


def test_whitespace_json_does_not_allow_takes_the_checked_path():
    body = batch_text(np.zeros((2, *SHAPE), dtype=np.float32))
    for bad in (b"\x0b" + body, body + b"\x0c", body.replace(b":", b"\x0b:", 1)):
        assert parse_samples(bytearray(bad), SHAPE, LIMITS, lambda: None) is None
    assert (
        parse_samples(bytearray(b" \r\n\t" + body + b"\n"), SHAPE, LIMITS, lambda: None) is not None
    )


def test_more_samples_than_the_batch_allows_take_the_checked_path():
    samples = np.zeros((6, *SHAPE), dtype=np.float32)
    assert parse_samples(bytearray(batch_text(samples)), SHAPE, LIMITS, lambda: None) is None


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.integers(0, 10_000),
        st.sampled_from(PIECES),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=2000, deadline=None)
@given(
    st.integers(1, 5),
    st.lists(st.floats(-1e6, 1e6, width=32), min_size=12, max_size=12),
    MUTATIONS,
)
# A number before the first sample: every sample still parses, the batch is ragged.
@example(count=2, values=[0.0] * 12, mutations=[("insert", len(b'{"instances":['), b"1,")])
# A sample of two rows where three belong, the only sample: it parses, of the wrong shape.
@example(
    count=1,
    values=[0.0] * 12,
    mutations=[("delete", len(b'{"instances":[['), b"[0.0,0.0,0.0,0.0],")],
)
def test_a_mutated_batch_is_parsed_as_the_whole_body_says_or_not_at_all(count, values, mutations):
    body = bytearray(batch_text(np.tile(np.float32(values).reshape(SHAPE), (count, 1, 1))))
    for kind, position, piece in mutations:
        at = position % len(body)
        if kind == "insert":
            body[at:at] = piece
        elif kind == "delete":
            del body[at : at + len(piece)]
        else:
            body[at : at + len(piece)] = piece
    with np.errstate(over="ignore"):
        parsed = parse_samples(bytearray(body), SHAPE, LIMITS, lambda: None)
    if parsed is not None:  # never a batch the whole body does not hold
        expected = whole_body_batch(bytes(body))
        assert expected is not None and np.array_equal(parsed, expected), bytes(body)
