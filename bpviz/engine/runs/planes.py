"""The byte planes of a bitwise difference, each stored the cheapest way its bytes allow: skipped, as is, or deflated.

A difference between an array and its keyframe (codec's `encode_delta`) is
split into byte planes: plane 0 holds every element's lowest byte, the last
plane every element's highest. For slowly changing floats the planes differ
in kind: the high ones (sign, exponent) are all or mostly zero, the low ones
(the last mantissa bits) look random. Deflate gains nothing on a random plane
yet spends most of its time there, so each plane is judged by how many of its
bytes are zero: a plane of zeros is not stored, a plane with few zeros is
stored as it is, and only the rest go through one deflate call (run-length
matches only). One kind byte per plane says which it was.
"""

from __future__ import annotations

import zlib

import numpy as np

ZERO, RAW, DEFLATED = 0, 1, 2  # the kind byte of a plane; the values are part of the file format
_RAW_WBITS = -15  # deflate without zlib's header and checksum: the difference's CRC checks the result
# The sparse planes are runs of zero bytes between small values: run-length matches find what deflate's hash
# search would, a little smaller and sooner; 6: a 4096-symbol block buffer, and a smaller hash table to clear
_MEM_LEVEL = 6
_FEW_ZEROS = 8  # a plane with fewer than 1/8 of its bytes zero is stored as it is: it would hardly deflate


class PlaneError(ValueError):
    """Plane bytes that do not add up to the planes their header promises."""


def pack_planes(bits: np.ndarray) -> bytes:
    """The byte planes of the unsigned integers `bits` (one dimension): kind bytes, raw planes, deflated planes."""
    size = bits.size
    data = bits.view(np.uint8).reshape(size, bits.itemsize).T.tobytes()  # plane after plane
    view = memoryview(data)
    kinds, raw, sparse = bytearray(), [], []
    for start in [i * size for i in range(bits.itemsize)]:
        zeros = data.count(0, start, start + size)  # bytes.count: no numpy call per plane
        if zeros == size:
            kinds.append(ZERO)
        elif zeros < size // _FEW_ZEROS:
            kinds.append(RAW)
            raw.append(view[start : start + size])
        else:
            kinds.append(DEFLATED)
            sparse.append(view[start : start + size])
    if not sparse:
        return b"".join([kinds, *raw])
    joined = b"".join(sparse)
    deflate = zlib.compressobj(1, zlib.DEFLATED, _RAW_WBITS, _MEM_LEVEL, zlib.Z_RLE)
    packed = deflate.compress(joined) + deflate.flush()
    if len(packed) >= len(joined):  # they did not deflate after all: stored as they are
        kinds = kinds.replace(bytes([DEFLATED]), bytes([RAW]))
        return b"".join([kinds, *[view[i * size : (i + 1) * size] for i, kind in enumerate(kinds) if kind == RAW]])
    return b"".join([kinds, *raw, packed])


def unpack_planes(blob: bytes | memoryview, offset: int, itemsize: int, size: int) -> bytes:
    """The `itemsize` planes of `size` bytes each, in plane order, from what `pack_planes` wrote at `offset`."""
    view = memoryview(blob)
    kinds = bytes(view[offset : offset + itemsize])
    if len(kinds) != itemsize or not set(kinds) <= {ZERO, RAW, DEFLATED}:
        raise PlaneError(f"the plane kinds {kinds!r} are not {itemsize} of zero, raw, deflated")
    start = offset + itemsize
    end = start + kinds.count(RAW) * size
    raw = view[start:end]
    try:
        packed = zlib.decompress(view[end:], _RAW_WBITS) if DEFLATED in kinds else bytes(view[end:])
    except zlib.error as error:
        raise PlaneError(f"a deflated plane does not inflate ({error})") from error
    if len(raw) != end - start or len(packed) != kinds.count(DEFLATED) * size:
        raise PlaneError(f"{len(view) - start} bytes of planes where their kinds {list(kinds)} need other lengths")
    parts, zero, next_raw, next_packed = [], bytes(size), 0, 0
    for kind in kinds:
        if kind == ZERO:
            parts.append(zero)
        elif kind == RAW:
            parts.append(raw[next_raw : next_raw + size])
            next_raw += size
        else:
            parts.append(packed[next_packed : next_packed + size])
            next_packed += size
    return b"".join(parts)
