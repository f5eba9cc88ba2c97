"""Run files store slowly changing arrays as differences from keyframes: exact across keyframes, never wrong."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from bpviz.engine.runs.codec import CodecError, decode_array, decode_arrays, delta_base, encode_array, encode_delta
from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.keyframes import KEYFRAME_EVERY
from tests.engine.run_files import assert_same

STEPS = KEYFRAME_EVERY + 8  # across the second keyframe


def relu_run(path, steps: int = STEPS, lr: float = 1e-3):
    """A ReLU MLP trained slowly on one batch (per-unit maxima and biases drift a little each step), recorded at the
    default level."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    live = []
    with bpviz.watch(model, record=path) as w:
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            live.append(w.step(loss))
    return live


def bases(path, column: str, layer: str) -> list[int | None]:
    """The keyframe step each step's blob of `column` names (None: stored plainly)."""
    with sqlite3.connect(path) as conn:
        sql = f"SELECT {column} FROM layer_steps JOIN layers USING (layer_id) WHERE name = ? ORDER BY step"
        return [delta_base(blob) for (blob,) in conn.execute(sql, (layer,))]


def test_every_step_reads_back_equal_across_keyframes_and_the_differences_point_at_them(tmp_path):
    path = tmp_path / "run.bpviz"
    live = relu_run(path, lr=1e-5)  # so slowly that every difference stays smaller than its keyframe
    with bpviz.open_run(path) as run:
        for record in reversed(live):  # no step needs another to have been read before it
            assert_same(record, run.record(record.step))
    found = bases(path, "unit_preact_max", "1")
    assert found[0] is None and found[KEYFRAME_EVERY] is None  # the keyframes
    assert found[1:KEYFRAME_EVERY] == [0] * (KEYFRAME_EVERY - 1)
    assert found[KEYFRAME_EVERY + 1 :] == [KEYFRAME_EVERY] * (STEPS - KEYFRAME_EVERY - 1)
    with sqlite3.connect(path) as conn:
        (plain,) = conn.execute("SELECT length(unit_preact_max) FROM layer_steps WHERE step = 0 AND seq = 1").fetchone()
        (delta,) = conn.execute("SELECT length(unit_preact_max) FROM layer_steps WHERE step = 5 AND seq = 1").fetchone()
    assert delta < plain


def test_a_difference_that_would_outgrow_its_keyframe_starts_a_new_keyframe(tmp_path):
    path = tmp_path / "run.bpviz"
    live = relu_run(path, lr=1.0)  # so fast that values jump and some differences would outgrow their keyframes
    with bpviz.open_run(path) as run:
        for record in live:
            assert_same(record, run.record(record.step))
    for layer in ("1", "3"):
        found = bases(path, "unit_preact_max", layer)
        keyframes = [step for step, base in enumerate(found) if base is None]
        assert len(keyframes) > STEPS // KEYFRAME_EVERY + 1  # more keyframes than age alone makes
        for step, base in enumerate(found):  # each difference names the latest keyframe before it
            if base is not None:
                assert base == max(k for k in keyframes if k < step) and step - base < KEYFRAME_EVERY


def _replace(conn: sqlite3.Connection, step: int, layer: str, blob: bytes | None) -> None:
    (layer_id,) = conn.execute("SELECT layer_id FROM layers WHERE name = ?", (layer,)).fetchone()
    sql = "UPDATE layer_steps SET unit_preact_max = ? WHERE step = ? AND layer_id = ?"
    assert conn.execute(sql, (blob, step, layer_id)).rowcount == 1


def _stored(conn: sqlite3.Connection, step: int, layer: str) -> bytes:
    sql = "SELECT unit_preact_max FROM layer_steps JOIN layers USING (layer_id) WHERE step = ? AND name = ?"
    return conn.execute(sql, (step, layer)).fetchone()[0]


@pytest.mark.parametrize("damage", ["another keyframe", "keyframe gone", "a flipped bit in the difference"])
def test_a_difference_whose_keyframe_was_lost_or_changed_is_an_error_never_a_wrong_value(tmp_path, damage):
    path = tmp_path / "run.bpviz"
    live = relu_run(path, steps=6)
    with sqlite3.connect(path) as conn:
        assert delta_base(_stored(conn, 4, "1")) == 0
        if damage == "another keyframe":
            _replace(conn, 0, "1", encode_array(live[0].layer("1").unit_preact_max + 1))
        elif damage == "keyframe gone":
            _replace(conn, 0, "1", None)
        else:
            blob = bytearray(_stored(conn, 4, "1"))
            blob[-1] ^= 0x10
            _replace(conn, 4, "1", bytes(blob))
    with bpviz.open_run(path) as run:
        with pytest.raises(RunFileError, match="damaged"):
            run.record(4)
        if damage == "a flipped bit in the difference":
            assert_same(live[3], run.record(3))  # the other steps still read
        else:
            with pytest.raises(RunFileError, match="damaged"):
                run.record(3)  # every difference from that keyframe


def test_a_difference_against_the_wrong_array_fails_its_check():
    base = np.linspace(-1, 1, 64, dtype=np.float32)
    blob = encode_delta(base * 1.001, base, 7)
    assert delta_base(blob) == 7 and delta_base(encode_array(base)) is None
    assert np.array_equal(decode_array(blob, lambda step: base), base * 1.001)
    with pytest.raises(CodecError, match="not the one"):
        decode_array(blob, lambda step: base + 1)
    with pytest.raises(CodecError, match="without that step"):
        decode_array(blob)
    assert encode_delta(base[:10], base, 7) is None  # another shape: stored plainly instead


def test_a_format_1_file_reads_back_equal(tmp_path):
    from bpviz.engine.runs.codec import Packer

    path = tmp_path / "old.bpviz"
    live = relu_run(path, steps=2)
    with sqlite3.connect(path) as conn:  # format 1: every array plain, the biases packed with the arrays inside
        conn.execute("UPDATE steps SET producer_bias = ? WHERE step = 1", (Packer().pack(live[1].producer_bias),))
        for layer in live[1].layers:
            if layer.unit_preact_max is not None:
                _replace(conn, 1, layer.name, encode_array(layer.unit_preact_max))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 1")
    with bpviz.open_run(path) as run:
        assert_same(live[1], run.record(1))


def _bitwise(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_float32_values_held_in_float64_are_differenced_in_their_float32_bits_and_read_back_bit_for_bit():
    rng = np.random.default_rng(0)
    base = rng.standard_normal(512).astype(np.float32).astype(np.float64)
    moved = (base + 1e-4 * rng.standard_normal(512)).astype(np.float32).astype(np.float64)
    moved[:4] = [-0.0, np.inf, -np.inf, np.nan]
    blob = encode_delta(moved, base, 3)
    wide = moved.copy()
    wide[7] = 0.1  # a value float32 cannot hold: the whole array keeps its float64 difference
    wide_blob = encode_delta(wide, base, 3)
    assert blob[0] & 8 and not wide_blob[0] & 8  # flag 8: taken over the float32 bits
    assert len(blob) < len(wide_blob)
    for array, encoded in ((moved, blob), (wide, wide_blob)):
        back = decode_array(encoded, lambda step: base)
        assert _bitwise(back, array)
        (together,) = decode_arrays([encoded], [lambda step: base])
        assert _bitwise(together, array)


def test_a_nan_payload_float32_cannot_hold_keeps_the_float64_difference_bit_for_bit():
    base = np.linspace(-1, 1, 64).astype(np.float32).astype(np.float64)
    moved = base.copy()
    moved.view(np.uint64)[5] = 0x7FF8000000000001  # a NaN whose low payload bit float32 would drop
    blob = encode_delta(moved, base, 0)
    assert not blob[0] & 8
    assert _bitwise(decode_array(blob, lambda step: base), moved)


def test_an_unchanged_array_stores_no_planes_at_all():
    base = np.linspace(-1, 1, 4096, dtype=np.float32)
    blob = encode_delta(base.copy(), base, 0)
    # the 4-byte header, the shape, the keyframe's step and CRC, then one kind byte per plane and nothing else
    assert len(blob) == 4 + 4 + 8 + 4
    assert _bitwise(decode_array(blob, lambda step: base), base)


def _old_difference(array: np.ndarray, base: np.ndarray, base_step: int) -> bytes:
    """A difference blob as the first version of format 2 wrote it: the XOR's byte planes deflated whole."""
    import struct
    import zlib

    code = {np.dtype("<f8"): 0, np.dtype("<f4"): 1}[array.dtype]
    bits = {8: np.uint64, 4: np.uint32}[array.itemsize]
    planes = (array.view(bits) ^ base.view(bits)).view(np.uint8).reshape(-1, array.itemsize).T.tobytes()
    header = struct.pack("<BBBBI", 4 | 1, code, code, 1, array.size) + struct.pack("<II", base_step, zlib.crc32(array))
    return header + zlib.compress(planes, 1, -15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_differences_in_the_earlier_layout_still_read_back(dtype):
    rng = np.random.default_rng(1)
    base = rng.standard_normal(64).astype(dtype)
    arrays = [base + dtype(1e-3) * rng.standard_normal(64).astype(dtype) for _ in range(3)]
    blobs = [_old_difference(array, base, 2) for array in arrays]
    for array, blob in zip(arrays, blobs):
        assert _bitwise(decode_array(blob, lambda step: base), array)
    for array, back in zip(arrays, decode_arrays(blobs, [lambda step: base] * 3)):
        assert _bitwise(back, array)
    with pytest.raises(CodecError, match="not the one"):
        decode_array(blobs[0], lambda step: base + 1)


def test_a_difference_is_given_only_when_smaller_than_its_limit():
    healthy = np.zeros(0, dtype=np.int64)  # the dead unit ids of a healthy layer: no difference can beat 8 bytes
    assert encode_delta(healthy.copy(), healthy, 0, limit=len(encode_array(healthy))) is None
    base = np.linspace(-1, 1, 64, dtype=np.float32)
    blob = encode_delta(base * 1.001, base, 0)
    assert encode_delta(base * 1.001, base, 0, limit=len(blob)) is None
    assert encode_delta(base * 1.001, base, 0, limit=len(blob) + 1) == blob


def test_a_difference_cut_short_anywhere_is_an_error_never_a_wrong_value():
    rng = np.random.default_rng(2)
    base = rng.standard_normal(256).astype(np.float32).astype(np.float64)
    moved = (base + 1e-3 * rng.standard_normal(256)).astype(np.float32).astype(np.float64)
    blob = encode_delta(moved, base, 0)
    assert _bitwise(decode_array(blob, lambda step: base), moved)
    assert blob[16:20] == bytes([1, 1, 2, 0])  # raw, raw, deflated, zero planes: every part of the layout is cut
    for cut in range(len(blob)):
        with pytest.raises(CodecError):
            decode_array(blob[:cut], lambda step: base)
