"""The byte planes of a bitwise difference, each stored the cheapest way its bytes allow: skipped, as is, or deflated.

A difference between an array and its keyframe (codec's `encode_delta`) is
split into byte planes: plane 0 holds every element's lowest byte, the last
plane every element's highest. For slowly changing floats the planes differ
in kind: the high ones (sign, exponent) are all or mostly zero, the low ones
(the last mantissa bits) look random. Deflate gains nothing on a random plane
yet spends most of its time there, so each plane is judged by how many of its
bytes are zero, one numpy pass for all of them: a plane of zeros is not
stored, a plane with few zeros is stored as it is, and only the rest go
through one deflate call. One kind byte per plane says which it was.
"""

from __future__ import annotations

import zlib

import numpy as np

ZERO, RAW, DEFLATED = 0, 1, 2  # the kind byte of a plane; the values are part of the file format
_RAW_WBITS = -15  # deflate without zlib's header and checksum: the difference's CRC checks the result
_FEW_ZEROS = 8  # a plane with fewer than 1/8 of its bytes zero is stored as it is: it would hardly deflate


class PlaneError(ValueError):
    """Plane bytes that do not add up to the planes their header promises."""


def pack_planes(bits: np.ndarray) -> bytes:
    """The byte planes of the unsigned integers `bits` (one dimension): kind bytes, raw planes, deflated planes."""
    size, itemsize = bits.size, bits.itemsize
    data = bits.view(np.uint8).reshape(size, itemsize).T.tobytes()  # plane after plane
    planes = [memoryview(data)[i * size : (i + 1) * size] for i in range(itemsize)]
    zeros = [data.count(0, i * size, (i + 1) * size) for i in range(itemsize)]  # bytes.count: no numpy call per plane
    kinds = bytearray(ZERO if n == size else RAW if n < size // _FEW_ZEROS else DEFLATED for n in zeros)
    packed = b""
    if DEFLATED in kinds:
        joined = b"".join([plane for plane, kind in zip(planes, kinds) if kind == DEFLATED])
        packed = zlib.compress(joined, 1, _RAW_WBITS)
        if len(packed) >= len(joined):  # they did not deflate after all: stored as they are
            kinds, packed = kinds.replace(bytes([DEFLATED]), bytes([RAW])), b""
    return b"".join([kinds, *[plane for plane, kind in zip(planes, kinds) if kind == RAW], packed])


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
