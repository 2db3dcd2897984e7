"""Property-based tests (hypothesis) of the inputs the Python API takes from users: any shape,
dtype or value gives either a clear error (ValueError/TypeError, parameters unchanged) or a
correct step -- never a crash, a silent NaN, or a half-applied update. Also the host
checkpoint reader on arbitrary bytes."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytrain
from tinytrain import checkpoint

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
CLASSES = 3


@pytest.fixture(scope="module")
def prog():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, CLASSES)).eval()
    return tinytrain.compile(model, torch.randn(1, 1, 8, 8), lr=0.01)


DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int32, np.uint8,
                          np.int64, np.bool_, np.complex64])
# Mostly the right shape (so that value checks are reached), sometimes any other.
SHAPES = st.one_of(st.just((1, 1, 8, 8)), hnp.array_shapes(min_dims=0, max_dims=5, max_side=9))
IMAGES = st.one_of(
    hnp.arrays(DTYPES, SHAPES),
    hnp.arrays(np.float32, st.just((1, 1, 8, 8)),
               elements=st.floats(allow_nan=True, allow_infinity=True, width=32)),
    hnp.arrays(np.float64, st.just((1, 1, 8, 8)),
               elements=st.floats(-1e40, 1e40, allow_nan=False)),
)
LABEL_SHAPES = hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)
LABELS = st.one_of(
    st.integers(-3, 6).map(lambda v: [v]),
    # Elements that fit each dtype (a value the dtype cannot hold is a bug of the strategy,
    # not of the API: hypothesis raises OverflowError while generating it).
    hnp.arrays(st.sampled_from([np.int32, np.int64]), LABEL_SHAPES, elements=st.integers(-3, 6)),
    hnp.arrays(np.uint8, LABEL_SHAPES, elements=st.integers(0, 6)),
    hnp.arrays(np.float32, LABEL_SHAPES, elements=st.integers(-3, 6).map(float)),
    hnp.arrays(np.bool_, LABEL_SHAPES),
    st.just([]), st.just("1"), st.just(None),
)


OUTCOMES = {"accepted": 0, "refused": 0}


def _params(prog):
    return [p.copy() for p in prog.program_params()]


@SETTINGS
@given(x=IMAGES, y=LABELS)
def test_train_step_gives_a_clear_error_or_a_correct_step(prog, x, y):
    before = _params(prog)
    try:
        logits = prog.predict(x)
    except (ValueError, TypeError) as e:
        assert str(e)
        logits = None
    try:
        loss = prog.train_step(x, y)
    except (ValueError, TypeError) as e:
        assert str(e), "an error must say what is wrong"
        after = prog.program_params()
        assert all(np.array_equal(a, b) for a, b in zip(before, after)), "refused, yet changed"
        OUTCOMES["refused"] += 1
        return
    OUTCOMES["accepted"] += 1
    # Accepted: the input was valid, so predict accepted it too; the loss is the cross-entropy
    # of those logits (before the update) and the new parameters are finite.
    assert logits is not None
    label = int(np.asarray(y).reshape(-1)[0])
    z = logits[0].astype(np.float64)
    expect = np.log(np.exp(z - z.max()).sum()) + z.max() - z[label]
    assert np.isfinite(loss) and abs(loss - expect) <= 1e-4 * max(1.0, abs(expect))
    assert all(np.isfinite(p).all() for p in prog.program_params())
    prog.load_state_dict({k: torch.from_numpy(v) for k, v in
                          zip(prog.trainable, [_torch_layout(prog, i, p) for i, p in enumerate(before)])})


def test_the_property_saw_both_outcomes():
    """Guard against a vacuous property: the examples above included valid steps and refusals."""
    assert OUTCOMES["accepted"] >= 3 and OUTCOMES["refused"] >= 10, OUTCOMES


def _torch_layout(prog, i, arr):
    from tinytrain.lowering.conversions.torch_to_tinytrain import to_torch_layout

    return np.ascontiguousarray(to_torch_layout(arr, prog.layouts[prog.trainable[i]]))


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_checkpoint_reader_refuses_arbitrary_bytes_cleanly(data):
    try:
        ck = checkpoint.read_checkpoint(data)
    except checkpoint.CheckpointError as e:
        assert e.status in ("TT_ERR_NO_CHECKPOINT", "TT_ERR_CKPT_CORRUPT")
    else:  # only possible with a correct CRC-32: re-encoding gives the same record
        assert checkpoint.encode_record(ck.payload, ck.model_id, sequence=ck.sequence,
                                        steps=ck.steps, rejected_steps=ck.rejected_steps,
                                        page_size=ck.page_size)[:64] in data


@SETTINGS
@given(payload=st.binary(max_size=600), seq=st.integers(0, 2**32 - 1),
       steps=st.integers(0, 2**64 - 1), page=st.sampled_from([64, 128, 256]),
       flip=st.integers(0, 10_000))
def test_checkpoint_records_round_trip_and_every_bit_flip_is_caught(payload, seq, steps, page, flip):
    rec = checkpoint.encode_record(payload, 0x1234ABCD, sequence=seq, steps=steps, page_size=page)
    ck = checkpoint.read_checkpoint(rec)
    assert (ck.payload, ck.sequence, ck.steps, ck.model_id) == (payload, seq, steps, 0x1234ABCD)
    pos = flip % len(rec)
    if HEADER_PAD[0] <= pos < page:  # padding between header and payload is not covered
        return
    bad = bytearray(rec)
    bad[pos] ^= 1 << (flip % 8)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.read_checkpoint(bytes(bad), model_id=0x1234ABCD)


HEADER_PAD = (checkpoint.HEADER_BYTES,)
