"""Slowly changing arrays stored as differences from a keyframe: the writer's choice and the reader's lookup.

A layer's per-unit input maxima, its unit activity, its dead unit ids and
the biases feeding it change little from one step to the next, yet a plain
blob stores them whole every step (they were half of a step's bytes). The
writer keeps, per (table, row key, column), the last array it stored plainly
(the keyframe) and stores later ones as their difference from it (codec's
`encode_delta`) while that is smaller than the keyframe itself and fewer than
KEYFRAME_EVERY steps have passed, never across a rewind's branches (a branch
starts its own keyframes). Every difference points at its keyframe,
never at another difference, so any step decodes from its own rows plus at
most one keyframe row per column. Histograms (nested) stay plain: their
counts jump.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass

import numpy as np

from bpviz.engine.made_once import MadeOnce
from bpviz.engine.runs.branches import STRIDE
from bpviz.engine.runs.codec import (
    Base,
    CodecError,
    DeltaBase,
    Unpacker,
    decode_array,
    delta_base,
    encode_array,
    encode_delta,
)
from bpviz.engine.runs.shape import ArrayCoder

KEYFRAME_EVERY = 32  # steps at most between a difference and its keyframe
_CACHE_LIMIT = 8192  # keyframe arrays a reader keeps (a scrub within one keyframe's span reuses them)
Slot = tuple[str, int | None, str]  # (table, row key: a layer's id, or None for the steps table, column)


@dataclass(frozen=True)
class _Keyframe:
    step: int
    base: DeltaBase | None  # the array as a reader decodes it, bit for bit; None: not one row at its step, unusable
    blob: bytes  # its plain blob


class KeyframeWriter:
    """The writer's keyframes; `coder(table, key, step)` encodes one row's arrays."""

    def __init__(self, every: int = KEYFRAME_EVERY) -> None:
        self.every = every
        self._frames: dict[Slot, _Keyframe] = {}

    def coder(self, table: str, key: int | None, step: int) -> ArrayCoder:
        return _Encoder(self, table, key, step)

    def encode(self, slot: Slot, step: int, array: np.ndarray) -> bytes:
        frame = self._frames.get(slot)
        if frame is not None and frame.step == step:
            # a second row with this key in one step: a reader could not tell which is the keyframe
            self._frames[slot] = _Keyframe(step, None, b"")
            return encode_array(array)
        same_branch = frame is not None and frame.step // STRIDE == step // STRIDE
        if same_branch and frame.base is not None and 0 < step - frame.step < self.every:
            # the keyframe's step as its branch numbers it: a reader sees one branch, with its own step numbers
            blob = encode_delta(array, frame.base, frame.step % STRIDE, limit=len(frame.blob))
            if blob is not None:
                return blob
        if frame is not None and frame.base is not None and _same_bits(array, frame.base.array):
            # stored whole again, as the same bytes (a short list of dead units, step after step): not encoded anew
            self._frames[slot] = _Keyframe(step, frame.base, frame.blob)
            return frame.blob
        blob = encode_array(array)
        if frame is not None and frame.base is not None and blob == frame.blob:
            base = frame.base  # other bits, the same bytes (-0.0 stored as 0): they decode to the keyframe's array
        else:  # as read back: the plain blob keeps values, not every bit (-0.0, NaN payloads)
            base = DeltaBase(decode_array(blob))
        self._frames[slot] = _Keyframe(step, base, blob)
        return blob


def _same_bits(array: np.ndarray, keyframe: np.ndarray) -> bool:
    """Whether `array` is its keyframe's array bit for bit (so its plain blob is the keyframe's)."""
    return array.dtype == keyframe.dtype and array.shape == keyframe.shape and array.tobytes() == keyframe.tobytes()


class _Encoder(ArrayCoder):
    def __init__(self, frames: KeyframeWriter, table: str, key: int | None, step: int) -> None:
        self._frames, self._table, self._key, self._step = frames, table, key, step

    def encode(self, column: str, array: np.ndarray) -> bytes:
        return self._frames.encode((self._table, self._key, column), self._step, array)


class KeyframeReader:
    """Finds and caches the keyframes the differences of a run file point at."""

    def __init__(self, conn: sqlite3.Connection, unpacker: Unpacker, key_columns: dict[str, str]) -> None:
        self._conn = conn
        self._unpacker = unpacker
        self._key_columns = key_columns  # table -> its row key column ("layer_steps" -> "layer_id")
        self._cache: MadeOnce[np.ndarray] = MadeOnce(_CACHE_LIMIT)  # decoded keyframes by (slot, step)
        self._blobs: dict[tuple[Slot, int], bytes | None] = {}  # read with a neighbour's, decoded when asked for
        self._coders: dict[tuple[str, int | None], _Decoder] = {}  # one per table and row key (a layer)

    def coder(self, table: str, key: int | None) -> ArrayCoder:
        found = self._coders.get((table, key))
        if found is None:
            found = self._coders[table, key] = _Decoder(self, table, key)
        return found

    def keyframe(self, slot: Slot, step: int) -> np.ndarray:
        """The plain array of `slot` at `step`; CodecError when the file has none there (a lost or damaged base)."""
        return self._cache.get((slot, step), lambda: self._decode_keyframe(slot, step))

    def _decode_keyframe(self, slot: Slot, step: int) -> np.ndarray:
        if (slot, step) not in self._blobs:
            self._read_step(slot, step)
        blob = self._blobs.pop((slot, step), None)
        if not isinstance(blob, bytes) or delta_base(blob) is not None:
            table, _, column = slot
            raise CodecError(
                f"the keyframe of {table}.{column} at step {step} is missing: the difference cannot be read"
            )
        return decode_array(blob)

    def _read_step(self, slot: Slot, step: int) -> None:
        """The blobs of `slot`'s column at `step` for every row key at once: the layers of a step mostly share
        their keyframe steps, so decoding one record asks once per column instead of once per layer."""
        table, key, column = slot
        field, _, item = column.partition(".")
        key_column = "NULL" if key is None else self._key_columns[table]
        rows = self._conn.execute(f'SELECT {key_column}, "{field}" FROM {table} WHERE step = ?', (step,)).fetchall()
        if len(self._blobs) >= _CACHE_LIMIT:
            self._blobs.clear()
        keys = Counter(k for k, _ in rows)
        for row_key, blob in rows:
            if keys[row_key] != 1 or not isinstance(blob, bytes):
                blob = None  # not one row with this key at that step: no keyframe a reader could trust
            if not item:
                self._blobs[((table, row_key, column), step)] = blob
                continue
            for name, inner in (self._unpacker.unpack(blob) if blob is not None else {}).items():
                self._blobs[((table, row_key, f"{field}.{name}"), step)] = inner if isinstance(inner, bytes) else None
        self._blobs.setdefault((slot, step), None)


class _Decoder(ArrayCoder):
    def __init__(self, frames: KeyframeReader, table: str, key: int | None) -> None:
        self._frames, self._table, self._key = frames, table, key
        self._bases: dict[str, Base] = {}

    def base(self, column: str) -> Base:
        found = self._bases.get(column)
        if found is None:
            slot = (self._table, self._key, column)
            found = self._bases[column] = lambda step: self._frames.keyframe(slot, step)
        return found
