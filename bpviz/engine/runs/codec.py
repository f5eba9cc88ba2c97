"""Exact, compact bytes for the values a step record holds: numpy arrays and small nested data.

Arrays are stored in the narrowest dtype that gives back every value
exactly (histogram counts are whole numbers or whole numbers times one
factor; float32 statistics widened to float64 fit float32 again), then
deflated when that pays. A slowly changing array (a layer's per-unit
maxima, a bias) can instead be stored as its bitwise difference from the
same array at an earlier keyframe step (in float32 bits when both hold
float32 values), byte planes apart so the bytes that did not change run
together: each plane is skipped, stored or deflated (see planes). It names
that step and carries a CRC of its own bytes, so a missing or wrong base is
an error, never a wrong value. Other values (lists, dicts, the record
dataclasses) use a small tagged format instead of pickle, so opening a run
file never runs code from it. Decoding gives back values equal to the ones
encoded, with the original dtype.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import struct
import zlib
from collections.abc import Callable

import numpy as np

from bpviz.engine.runs.planes import PlaneError, pack_planes, unpack_planes

# dtype codes of the array header; the order is part of the file format
_DTYPES = [np.dtype(c) for c in ("<f8", "<f4", "<i8", "<i4", "<i2", "i1", "<u8", "<u4", "<u2", "u1", "?", "<f2")]
_CODE = {dtype: code for code, dtype in enumerate(_DTYPES)}
# the integer dtypes whole numbers are stored in, narrowest first, with their ranges (np.iinfo is slow to ask)
_INTS = [
    (d, int(np.iinfo(d).min), int(np.iinfo(d).max))
    for d in map(np.dtype, ("u1", "i1", "<u2", "<i2", "<u4", "<i4", "<i8"))
]
# flags; a difference (_DELTA) written before byte planes were judged one by one (_PLANES) is deflated whole
_DEFLATED, _SCALED, _DELTA, _NARROW, _PLANES = 1, 2, 4, 8, 16
_HEADER = struct.Struct("<BBBB")
_SCALE = struct.Struct("<d")
_DELTA_HEADER = struct.Struct("<II")  # the keyframe's step, CRC-32 of the array's own bytes
_RAW = -15  # differences of the old layout: deflated without zlib's header and checksum (the CRC checks them)
_BITS = {1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}
Base = Callable[[int], np.ndarray]  # the keyframe array of a delta blob, from the step it names


class CodecError(ValueError):
    """Bytes that are not a value this module wrote."""


def encode_array(array: np.ndarray) -> bytes:
    """Header (flags, dtype, stored dtype, ndim), shape, optional scale, then the data, deflated when smaller."""
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    if dtype not in _CODE:
        raise CodecError(f"cannot store arrays of dtype {array.dtype}")
    stored, scale = _narrowest(array)
    data = stored.astype(stored.dtype.newbyteorder("<"), copy=False).tobytes()
    flags = _SCALED if scale is not None else 0
    packed = zlib.compress(data, 1) if len(data) > 32 else data
    if len(packed) < len(data):
        flags |= _DEFLATED
        data = packed
    parts = [_HEADER.pack(flags, _CODE[dtype], _CODE[stored.dtype.newbyteorder("=")], array.ndim)]
    parts.append(struct.pack(f"<{array.ndim}I", *array.shape))
    if scale is not None:
        parts.append(struct.pack("<d", scale))
    parts.append(data)
    return b"".join(parts)


class DeltaBase:
    """A keyframe array as `encode_delta` takes differences from it: its float32 bits (when it holds float32 values)
    are worked out once for all the steps of its span."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.float32 = _float32_bits(array)


def encode_delta(
    array: np.ndarray, base: np.ndarray | DeltaBase, base_step: int, limit: int | None = None
) -> bytes | None:
    """`array` as its difference from `base` (the same array as it was at step `base_step`, decoded from a plain
    blob); None when the two do not line up (another shape or dtype) or the difference would take `limit` bytes
    or more (a plain blob that size is better; one too small to beat costs no numpy call): the caller stores it
    plainly instead.

    float64 arrays that hold float32 values (statistics widened on their way to the host), like their keyframe,
    are differenced in their float32 bits: half the planes, every value still given back bit for bit (the check
    is on the bits, so -0.0 and NaN payloads that float32 cannot hold keep the float64 difference)."""
    base = base if isinstance(base, DeltaBase) else DeltaBase(base)
    keyframe = base.array
    array = _little(np.ascontiguousarray(array))
    if array.dtype not in _CODE or array.shape != keyframe.shape or array.dtype != keyframe.dtype:
        return None
    if limit is not None and limit <= _HEADER.size + 4 * array.ndim + _DELTA_HEADER.size + array.itemsize // 2:
        return None  # its headers alone, and at least half its itemsize in kind bytes (a narrowed float64)
    flags = _DELTA | _PLANES
    ours = _float32_bits(array) if base.float32 is not None else None
    if ours is not None:
        flags |= _NARROW
        theirs = base.float32
    else:
        ours, theirs = _bits(array), _bits(keyframe)
    code = _CODE[array.dtype]
    blob = b"".join(
        [
            _HEADER.pack(flags, code, code, array.ndim),
            _shape_struct(array.ndim).pack(*array.shape),
            _DELTA_HEADER.pack(base_step, zlib.crc32(array)),
            pack_planes((ours ^ theirs).reshape(-1)),
        ]
    )
    return blob if limit is None or len(blob) < limit else None


def delta_base(blob: bytes) -> int | None:
    """The keyframe step a delta blob is relative to; None for a plain blob."""
    try:
        flags, _, _, ndim = _HEADER.unpack_from(blob, 0)
        return _DELTA_HEADER.unpack_from(blob, _HEADER.size + 4 * ndim)[0] if flags & _DELTA else None
    except struct.error as error:
        raise CodecError(f"not an array blob ({error})") from error


def decode_array(blob: bytes, base: Base | None = None) -> np.ndarray:
    """The array `encode_array` (or `encode_delta`) was given, in its own dtype; `base` gives a delta's keyframe."""
    try:
        flags, code, stored_code, ndim = _HEADER.unpack_from(blob, 0)
        shape_struct = _shape_struct(ndim)
        shape = shape_struct.unpack_from(blob, _HEADER.size)
        offset = _HEADER.size + shape_struct.size
        if flags & _DELTA:
            return _undelta(blob, offset, flags, _DTYPES[code], shape, base)
        scale = None
        if flags & _SCALED:
            (scale,) = _SCALE.unpack_from(blob, offset)
            offset += _SCALE.size
        if flags & _DEFLATED:
            data, offset = zlib.decompress(memoryview(blob)[offset:]), 0
        else:
            data = blob
        stored = np.frombuffer(data, dtype=_DTYPES[stored_code], offset=offset).reshape(shape)
        dtype = _DTYPES[code]
    except CodecError:
        raise
    except (struct.error, zlib.error, IndexError, ValueError) as error:
        raise CodecError(f"not an array blob ({error})") from error
    if scale is not None:  # only float64 arrays are stored scaled
        return stored.astype(np.float64) * scale
    return stored.astype(dtype)


def decode_arrays(blobs: list[bytes], bases: list[Base | None]) -> list[np.ndarray]:
    """`decode_array(blob, base)` of each blob, equal value for value: blobs with one header (the same dtypes, shape
    and flags: a column of one step's layers, a heatmap's rows) decode in one numpy pass over all of them, since
    a few numpy calls per blob cost more than the bytes they touch. Each array is a row of its group's array."""
    groups: dict[bytes, list[int]] = {}
    try:
        for i, blob in enumerate(blobs):
            groups.setdefault(blob[: _HEADER.size + 4 * blob[3]], []).append(i)
    except IndexError as error:
        raise CodecError(f"not an array blob ({error})") from error
    arrays: list[np.ndarray] = [None] * len(blobs)  # type: ignore[list-item]
    for header, members in groups.items():
        if len(members) == 1:
            arrays[members[0]] = decode_array(blobs[members[0]], bases[members[0]])
            continue
        try:
            flags, code, stored_code, ndim = _HEADER.unpack_from(header, 0)
            shape = _shape_struct(ndim).unpack_from(header, _HEADER.size)
            group = [blobs[i] for i in members]
            if flags & _DELTA:
                decoded = _undelta_group(group, len(header), flags, _DTYPES[code], shape, [bases[i] for i in members])
            else:
                decoded = _plain_group(group, len(header), flags, _DTYPES[code], _DTYPES[stored_code], shape)
        except CodecError:
            raise
        except (struct.error, zlib.error, IndexError, ValueError) as error:
            raise CodecError(f"not an array blob ({error})") from error
        for i, array in zip(members, decoded):
            arrays[i] = array
    return arrays


def _plain_group(
    blobs: list[bytes], offset: int, flags: int, dtype: np.dtype, stored: np.dtype, shape: tuple
) -> np.ndarray:
    scales = None
    if flags & _SCALED:
        scales = np.array([_SCALE.unpack_from(blob, offset)[0] for blob in blobs])
        offset += _SCALE.size
    values = _joined(blobs, offset, flags, math.prod(shape) * stored.itemsize)
    whole = np.frombuffer(values, dtype=stored).reshape(len(blobs), *shape)
    if scales is not None:  # only float64 arrays are stored scaled
        return whole.astype(np.float64) * scales.reshape(-1, *[1] * len(shape))
    return whole.astype(dtype)


def _undelta_group(
    blobs: list[bytes], offset: int, flags: int, dtype: np.dtype, shape: tuple, bases: list[Base | None]
) -> np.ndarray:
    keyframes, crcs, parts = [], [], []
    bits_dtype = _differenced(flags, dtype)
    size = math.prod(shape)
    for blob, base in zip(blobs, bases):
        keyframe, base_step, crc = _keyframe(blob, offset, dtype, shape, base)
        keyframes.append(keyframe)
        crcs.append((base_step, crc))
        parts.append(_delta_planes(blob, offset + _DELTA_HEADER.size, flags, bits_dtype.itemsize, size))
    planes = np.frombuffer(b"".join(parts), dtype=np.uint8).reshape(len(blobs), bits_dtype.itemsize, size)
    bits = np.ascontiguousarray(planes.transpose(0, 2, 1)).view(_BITS[bits_dtype.itemsize]).reshape(len(blobs), *shape)
    whole = _from_bits(bits ^ _bits(np.stack(keyframes).astype(bits_dtype, copy=False)), bits_dtype, dtype)
    for array, (base_step, crc) in zip(whole, crcs):
        if zlib.crc32(array) != crc:
            raise CodecError(f"the keyframe at step {base_step} is not the one this difference was taken from")
    return whole


def _joined(blobs: list[bytes], offset: int, flags: int, size: int) -> bytes:
    """The data of each plain blob from `offset` on (inflated when deflated), each `size` bytes, joined."""
    return b"".join([_data(blob, offset, flags, zlib.MAX_WBITS, size) for blob in blobs])


def _data(blob: bytes, offset: int, flags: int, wbits: int, size: int) -> bytes:
    """A blob's data from `offset` on, inflated when deflated, checked to be `size` bytes."""
    data = zlib.decompress(memoryview(blob)[offset:], wbits) if flags & _DEFLATED else blob[offset:]
    if len(data) != size:
        raise CodecError(f"not an array blob ({len(data)} bytes of data where its shape needs {size})")
    return data


@functools.cache
def _shape_struct(ndim: int) -> struct.Struct:
    return struct.Struct(f"<{ndim}I")


def _keyframe(
    blob: bytes, offset: int, dtype: np.dtype, shape: tuple, base: Base | None
) -> tuple[np.ndarray, int, int]:
    """The keyframe a difference blob names, its step and the CRC of the array the difference was taken for."""
    base_step, crc = _DELTA_HEADER.unpack_from(blob, offset)
    if base is None:
        raise CodecError(f"a difference from step {base_step} read without that step")
    keyframe = base(base_step)
    if keyframe.shape != shape or keyframe.dtype != dtype:
        raise CodecError(
            f"the keyframe at step {base_step} is a {keyframe.dtype} {keyframe.shape}, not {dtype} {shape}"
        )
    return keyframe, base_step, crc


def _undelta(blob: bytes, offset: int, flags: int, dtype: np.dtype, shape: tuple, base: Base | None) -> np.ndarray:
    keyframe, base_step, crc = _keyframe(blob, offset, dtype, shape, base)
    bits_dtype = _differenced(flags, dtype)
    data = _delta_planes(blob, offset + _DELTA_HEADER.size, flags, bits_dtype.itemsize, math.prod(shape))
    planes = np.frombuffer(data, dtype=np.uint8).reshape(bits_dtype.itemsize, -1)
    bits = np.ascontiguousarray(planes.T).view(_BITS[bits_dtype.itemsize]).reshape(shape)
    array = _from_bits(bits ^ _bits(keyframe.astype(bits_dtype, copy=False)), bits_dtype, dtype)
    if zlib.crc32(array) != crc:
        raise CodecError(f"the keyframe at step {base_step} is not the one this difference was taken from")
    return array


def _differenced(flags: int, dtype: np.dtype) -> np.dtype:
    """The dtype whose bits a difference blob XORs: float32 for a narrowed float64 array, else the array's own."""
    return np.dtype(np.float32) if flags & _NARROW else dtype


def _from_bits(bits: np.ndarray, bits_dtype: np.dtype, dtype: np.dtype) -> np.ndarray:
    """The array of `dtype` whose `bits_dtype` bits these are (a narrowed difference widens back exactly)."""
    values = bits.view(bits_dtype)
    return values.astype(dtype) if bits_dtype != dtype else values


def _delta_planes(blob: bytes, offset: int, flags: int, itemsize: int, size: int) -> bytes:
    """The byte planes of a difference blob from `offset` on, in plane order, checked to be as long as its shape."""
    if flags & _PLANES:
        try:
            return unpack_planes(blob, offset, itemsize, size)
        except PlaneError as error:
            raise CodecError(f"not an array blob ({error})") from error
    return _data(blob, offset, flags, _RAW, itemsize * size)


def _float32_bits(array: np.ndarray) -> np.ndarray | None:
    """The float32 bits of a float64 array that holds float32 values exactly, bit for bit; else None."""
    if array.dtype != np.float64:
        return None
    narrow = array.astype(np.float32)
    return narrow.view(np.uint32) if narrow.astype(np.float64).tobytes() == array.tobytes() else None


def _little(array: np.ndarray) -> np.ndarray:
    return array.astype(array.dtype.newbyteorder("<")) if array.dtype.byteorder == ">" else array


def _bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).view(_BITS[array.dtype.itemsize])


def _narrowest(array: np.ndarray) -> tuple[np.ndarray, float | None]:
    """The same values in a smaller dtype (and a factor), checked to decode back exactly."""
    if array.size == 0 or array.dtype.kind in "b":
        return array, None
    if array.dtype.kind in "iu":
        return _as_ints(array) if array.dtype.itemsize > 1 else array, None
    if not np.isfinite(array).all():
        return _as_float32(array), None
    ints = _whole(array)
    if ints is not None:
        return ints, None
    if array.dtype == np.float64:
        scaled = _scaled(array)
        if scaled is not None:
            return scaled
    return _as_float32(array), None


def _whole(array: np.ndarray) -> np.ndarray | None:
    rounded = np.rint(array)
    if not (rounded == array).all():  # finite values (see _narrowest): no NaN to compare
        return None
    return _as_ints(rounded)


def _as_ints(array: np.ndarray) -> np.ndarray:
    lo, hi = array.min().item(), array.max().item()
    for dtype, low, high in _INTS:
        if low <= lo and hi <= high:
            return array.astype(dtype)
    return array


def _scaled(array: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Whole numbers times one factor (histogram counts scaled from a sample to the whole tensor)."""
    magnitudes = np.abs(array[array != 0])
    if magnitudes.size == 0:
        return None
    scale = float(magnitudes.min())
    whole = np.rint(array / scale)
    if np.abs(whole).max() > 2**31 or not (whole * scale == array).all():
        return None
    return _as_ints(whole), scale


def _as_float32(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.float64:
        return array
    narrow = array.astype(np.float32)
    same = np.array_equal(narrow.astype(np.float64), array, equal_nan=True)
    return narrow if same else array


# --- nested values -----------------------------------------------------------------------------

_NONE, _TRUE, _FALSE, _INT, _FLOAT, _STR, _LIST, _TUPLE, _DICT, _ARRAY, _OBJECT, _BYTES = b"NTFifslthaob"


class Packer:
    """Writes nested values; strings can be interned (stored once per file, referenced by number)."""

    def __init__(self, intern: Callable[[str], int] | None = None) -> None:
        self._intern = intern

    def pack(self, value: object) -> bytes:
        out = bytearray()
        self._write(out, value)
        return bytes(out)

    def _write(self, out: bytearray, value: object) -> None:
        if value is None:
            out.append(_NONE)
        elif value is True or value is False or isinstance(value, np.bool_):
            out.append(_TRUE if value else _FALSE)
        elif isinstance(value, (int, np.integer)):
            out.append(_INT)
            _varint(out, _zigzag(int(value)))
        elif isinstance(value, (float, np.floating)):
            out.append(_FLOAT)
            out += struct.pack("<d", float(value))
        elif isinstance(value, str):
            self._string(out, value)
        elif isinstance(value, np.ndarray):
            blob = encode_array(value)
            out.append(_ARRAY)
            _varint(out, len(blob))
            out += blob
        elif isinstance(value, bytes):
            out.append(_BYTES)
            _varint(out, len(value))
            out += value
        elif isinstance(value, (list, tuple)):
            out.append(_LIST if isinstance(value, list) else _TUPLE)
            _varint(out, len(value))
            for item in value:
                self._write(out, item)
        elif isinstance(value, dict):
            out.append(_DICT)
            _varint(out, len(value))
            for key, item in value.items():
                self._write(out, key)
                self._write(out, item)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.append(_OBJECT)
            self._string(out, type(value).__name__)
            fields = dataclasses.fields(value)
            _varint(out, len(fields))
            for f in fields:
                self._string(out, f.name)
                self._write(out, getattr(value, f.name))
        else:
            raise CodecError(f"cannot store a value of type {type(value).__name__}")

    def _string(self, out: bytearray, text: str) -> None:
        out.append(_STR)
        if self._intern is not None:
            _varint(out, self._intern(text) * 2 + 1)  # odd: a reference into the file's string table
            return
        data = text.encode("utf-8")
        _varint(out, len(data) * 2)
        out += data


class Unpacker:
    """Reads what a Packer wrote; `classes` are the only dataclasses it will build (by name)."""

    def __init__(self, classes: dict[str, type], strings: Callable[[int], str] | None = None) -> None:
        self._classes = classes
        self._strings = strings

    def unpack(self, data: bytes) -> object:
        try:
            value, end = self._read(memoryview(data), 0)
        except (IndexError, struct.error, UnicodeDecodeError, KeyError, TypeError) as error:
            raise CodecError(f"not a packed value ({type(error).__name__}: {error})") from error
        if end != len(data):
            raise CodecError(f"{len(data) - end} stray bytes after a packed value")
        return value

    def _read(self, data: memoryview, pos: int) -> tuple[object, int]:
        tag = data[pos]
        pos += 1
        if tag == _NONE:
            return None, pos
        if tag in (_TRUE, _FALSE):
            return tag == _TRUE, pos
        if tag == _INT:
            raw, pos = _read_varint(data, pos)
            return _unzigzag(raw), pos
        if tag == _FLOAT:
            return struct.unpack_from("<d", data, pos)[0], pos + 8
        if tag == _STR:
            return self._read_string(data, pos)
        if tag == _ARRAY:
            size, pos = _read_varint(data, pos)
            return decode_array(bytes(data[pos : pos + size])), pos + size
        if tag == _BYTES:
            size, pos = _read_varint(data, pos)
            return bytes(data[pos : pos + size]), pos + size
        if tag in (_LIST, _TUPLE):
            count, pos = _read_varint(data, pos)
            items = []
            for _ in range(count):
                item, pos = self._read(data, pos)
                items.append(item)
            return (items if tag == _LIST else tuple(items)), pos
        if tag == _DICT:
            count, pos = _read_varint(data, pos)
            result = {}
            for _ in range(count):
                key, pos = self._read(data, pos)
                result[key], pos = self._read(data, pos)
            return result, pos
        if tag == _OBJECT:
            return self._read_object(data, pos)
        raise CodecError(f"unknown tag {tag!r} at byte {pos - 1}")

    def _read_string(self, data: memoryview, pos: int) -> tuple[str, int]:
        raw, pos = _read_varint(data, pos)
        if raw % 2:
            if self._strings is None:
                raise CodecError("an interned string without a string table")
            return self._strings(raw // 2), pos
        size = raw // 2
        return bytes(data[pos : pos + size]).decode("utf-8"), pos + size

    def _read_object(self, data: memoryview, pos: int) -> tuple[object, int]:
        name, pos = self._read(data, pos)
        cls = self._classes.get(name)
        if cls is None:
            raise CodecError(f"unknown record type {name!r}")
        count, pos = _read_varint(data, pos)
        values = {}
        for _ in range(count):
            field, pos = self._read(data, pos)
            values[field], pos = self._read(data, pos)
        return build(cls, values), pos


def build(cls: type, values: dict[str, object]) -> object:
    """An instance of dataclass `cls` from stored field values: fields it lost are dropped, new ones default."""
    known = init_fields(cls)
    if known.issuperset(values):
        return cls(**values)
    return cls(**{name: value for name, value in values.items() if name in known})


@functools.cache
def init_fields(cls: type) -> frozenset[str]:
    """The fields of dataclass `cls` its constructor takes."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzigzag(n: int) -> int:
    return n // 2 if n % 2 == 0 else -(n + 1) // 2


def _varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_varint(data: memoryview, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
