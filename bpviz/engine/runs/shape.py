"""SQL columns derived from a record dataclass's fields, and the conversion of one instance to a row and back.

The tables follow the dataclasses in engine/record/records.py instead of
being written out by hand, so a new field is stored without schema surgery:
numbers, flags and names become plain columns a person can query, flat
lists of names or sizes become JSON text, a nested dataclass (a Histogram)
becomes a group of columns (`histogram_counts`, `histogram_lo`, ...), arrays
become compact blobs (see codec), a map of names to arrays a packed map of
such blobs, and anything else a packed blob. The caller chooses how a
top-level array is encoded (`ArrayCoder`: plainly, or as a difference from a
keyframe of the same column and row key). A file
keeps the columns it was made with; reading maps them back by name, so a
field a file lacks takes its default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing

import numpy as np

from bpviz.engine.runs.codec import Packer, Unpacker, build, decode_array, encode_array

REAL, INTEGER, BOOL, TEXT, JSON, ARRAY, ARRAY_MAP, PACKED, NESTED, CHILD = (
    "REAL",
    "INTEGER",
    "BOOL",
    "TEXT",
    "JSON",
    "ARRAY",
    "ARRAY_MAP",
    "PACKED",
    "NESTED",
    "CHILD",
)
_SQL_TYPE = {
    REAL: "REAL",
    INTEGER: "INTEGER",
    BOOL: "INTEGER",
    TEXT: "TEXT",
    JSON: "TEXT",
    ARRAY: "BLOB",
    ARRAY_MAP: "BLOB",
    PACKED: "BLOB",
}
_PRIMITIVES = (int, float, str, bool)
NAN_COLUMN = "nan"  # per row: the REAL columns that held NaN (SQLite stores NaN as NULL)


class ArrayCoder:
    """Array <-> blob for the top-level array columns of one row; `column` is the field's name, with
    `.key` appended for one array of a map (`producer_bias.fc1`). This one stores every array plainly."""

    def encode(self, column: str, array: np.ndarray) -> bytes:
        return encode_array(array)

    def decode(self, column: str, blob: bytes) -> np.ndarray:
        return decode_array(blob)


PLAIN = ArrayCoder()


@dataclasses.dataclass(frozen=True)
class Field:
    """One dataclass field and how it is stored."""

    name: str
    kind: str
    sequence: type | None = None  # list or tuple, for JSON fields
    inner: Shape | None = None  # the nested dataclass's shape, for NESTED and CHILD fields


class Shape:
    """How instances of one dataclass map to the columns of a table."""

    def __init__(self, cls: type, skip: tuple[str, ...] = ()) -> None:
        self.cls = cls
        hints = typing.get_type_hints(cls)
        self.fields = [_classify(f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.name not in skip]

    def by_kind(self, *kinds: str) -> list[Field]:
        return [f for f in self.fields if f.kind in kinds]

    def columns(self, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """(column name, SQL type) for every stored field except CHILD ones and `skip`."""
        result = []
        for f in self.fields:
            if f.kind == CHILD or f.name in skip:
                continue
            if f.kind == NESTED:
                result += [(f"{f.name}_{name}", sql) for name, sql in f.inner.columns()]
            else:
                result.append((f.name, _SQL_TYPE[f.kind]))
        return result

    def to_row(
        self, obj: object, packer: Packer, skip: tuple[str, ...] = (), arrays: ArrayCoder = PLAIN
    ) -> tuple[dict[str, object], list[str]]:
        """Column values of `obj`, and the REAL columns that held NaN."""
        row: dict[str, object] = {}
        nans: list[str] = []
        for f in self.fields:
            if f.kind == CHILD or f.name in skip:
                continue
            value = getattr(obj, f.name)
            if f.kind == NESTED:
                if value is not None:
                    inner, inner_nans = f.inner.to_row(value, packer)
                    row.update({f"{f.name}_{k}": v for k, v in inner.items()})
                    nans += [f"{f.name}_{k}" for k in inner_nans]
                continue
            if value is None:
                continue
            if f.kind == REAL:
                value = float(value)
                if math.isnan(value):
                    nans.append(f.name)
                    continue
            elif f.kind == BOOL:
                value = int(bool(value))
            elif f.kind == JSON:
                value = json.dumps(list(value), separators=(",", ":"))
            elif f.kind == ARRAY:
                value = arrays.encode(f.name, np.asarray(value))
            elif f.kind == ARRAY_MAP:
                value = packer.pack({k: arrays.encode(f"{f.name}.{k}", np.asarray(v)) for k, v in value.items()})
            elif f.kind == PACKED:
                value = packer.pack(value)
            row[f.name] = value
        return row, nans

    def values(
        self,
        row: dict[str, object],
        unpacker: Unpacker,
        nans: set[str],
        prefix: str = "",
        arrays: ArrayCoder = PLAIN,
        only: frozenset[str] | None = None,
    ) -> dict[str, object]:
        """Field values from a row (`row` maps column names to values; absent columns keep defaults); `only`: just
        these fields (a time axis reads a few columns of thousands of rows)."""
        values: dict[str, object] = {}
        for f in self.fields if only is None else [f for f in self.fields if f.name in only]:
            column = prefix + f.name
            if f.kind == CHILD:
                continue
            if f.kind == NESTED:
                if not any(k.startswith(column + "_") for k in row):
                    continue  # not read (a row of some columns only): the default
                inner = f.inner.values(row, unpacker, nans, column + "_")
                values[f.name] = build(f.inner.cls, inner) if any(v is not None for v in inner.values()) else None
                continue
            if column not in row:
                if column in nans:
                    values[f.name] = math.nan
                continue
            value = row[column]
            if value is None:
                values[f.name] = math.nan if column in nans else None
            elif f.kind == REAL:
                values[f.name] = float(value)
            elif f.kind == BOOL:
                values[f.name] = bool(value)
            elif f.kind == JSON:
                values[f.name] = f.sequence(json.loads(value))
            elif f.kind == ARRAY:
                values[f.name] = arrays.decode(column, value)
            elif f.kind == ARRAY_MAP:
                # format 1 packed the arrays themselves, format 2 their blobs
                items = unpacker.unpack(value).items()
                values[f.name] = {k: arrays.decode(f"{column}.{k}", v) if isinstance(v, bytes) else v for k, v in items}
            elif f.kind == PACKED:
                values[f.name] = unpacker.unpack(value)
            else:
                values[f.name] = value
        return values


def nan_text(nans: list[str]) -> str | None:
    """The NaN column of a row: the names of its NaN columns, comma-separated, or NULL for none."""
    return ",".join(nans) if nans else None


def nan_set(text: str | None) -> set[str]:
    return set(text.split(",")) if text else set()


def _classify(name: str, hint: object) -> Field:
    """The storage kind of a field from its type hint (Optional[...] stores like its inner type, NULL for None)."""
    hint = strip_none(hint)
    origin = typing.get_origin(hint)
    if hint is bool:
        return Field(name, BOOL)
    if hint is int:
        return Field(name, INTEGER)
    if hint is float:
        return Field(name, REAL)
    if hint is str:
        return Field(name, TEXT)
    if hint is np.ndarray:
        return Field(name, ARRAY)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return Field(name, NESTED, inner=Shape(hint))
    if origin is dict and typing.get_args(hint) == (str, np.ndarray):
        return Field(name, ARRAY_MAP)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if origin is list and len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return Field(name, CHILD, inner=Shape(args[0]))
        if args and all(a in _PRIMITIVES for a in args):
            return Field(name, JSON, sequence=origin)
    return Field(name, PACKED)


def strip_none(hint: object) -> object:
    """The type inside Optional[...] (`float | None` -> float); any other hint as it is."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint
