"""A column of array blobs decodes in one pass (`decode_arrays`) to exactly what each blob decodes to alone."""

from __future__ import annotations

import numpy as np
import pytest

from bpviz.engine.runs.codec import CodecError, decode_array, decode_arrays, encode_array, encode_delta


def _blobs() -> tuple[list[bytes], list]:
    """Blobs as a step's layers store them: histograms (whole counts, counts times a factor), ids, float32 maxima
    plain and as differences from their keyframes, small and large (deflated) alike, in mixed order."""
    rng = np.random.default_rng(0)
    keyframes = {step: rng.standard_normal(64).astype(np.float32) for step in (3, 5, 8)}
    blobs, bases = [], []
    for i in range(12):
        counts = rng.integers(0, 300, 64).astype(np.float64)
        blobs += [encode_array(counts), encode_array(counts * 0.37), encode_array(np.arange(i, dtype=np.int64))]
        bases += [None, None, None]
        step = (3, 5, 8)[i % 3]
        moved = keyframes[step] + np.float32(1e-4) * rng.standard_normal(64).astype(np.float32)
        blobs += [encode_delta(moved, keyframes[step], step), encode_array(moved), encode_array(moved[:3])]
        bases += [keyframes.__getitem__, None, None]
    blobs.append(encode_array(np.zeros((2, 3), dtype=np.uint8)))
    bases.append(None)
    return blobs, bases


def test_a_column_decodes_to_what_each_blob_decodes_to_alone():
    blobs, bases = _blobs()
    together = decode_arrays(blobs, bases)
    assert len(together) == len(blobs)
    for blob, base, array in zip(blobs, bases, together):
        alone = decode_array(blob, base)
        assert array.dtype == alone.dtype and array.shape == alone.shape
        assert np.array_equal(array.view(np.uint8), alone.view(np.uint8))  # bit for bit
        assert array.flags.writeable


def test_one_bad_blob_in_a_column_is_an_error_never_a_wrong_value():
    blobs, bases = _blobs()
    deltas = [i for i, base in enumerate(bases) if base is not None]
    wrong = list(bases)
    wrong[deltas[4]] = lambda step: np.zeros(64, dtype=np.float32)
    with pytest.raises(CodecError, match="not the one"):
        decode_arrays(blobs, wrong)
    missing = list(bases)
    missing[deltas[2]] = None
    with pytest.raises(CodecError, match="without that step"):
        decode_arrays(blobs, missing)
    short = list(blobs)
    short[5], short[11] = blobs[5][:-1], blobs[11] + b"\x00"  # two plain (3,) arrays: one byte moved between them
    with pytest.raises(CodecError, match="bytes of data"):
        decode_arrays(short, bases)
