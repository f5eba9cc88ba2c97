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
import functools
import json
import math
import operator
import types
import typing
from collections.abc import Callable

import numpy as np

from bpviz.engine.runs.codec import Base, Packer, Unpacker, decode_array, decode_arrays, encode_array, init_fields

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
        return decode_array(blob, self.base(column))

    def base(self, column: str) -> Base | None:
        """The keyframe arrays a difference blob of `column` is decoded against (None: plain blobs only)."""
        return None


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
        self._plans: dict[tuple, RowPlan] = {}
        self._writes: dict[tuple[tuple[str, ...], str], _WritePlan] = {}

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
        """Column values of `obj` (NULL ones left out: binding None costs SQLite's module as much as a blob), and
        the REAL columns that held NaN."""
        row: dict[str, object] = {}
        nans: list[str] = []
        self._written(skip, "").fill(obj, packer, arrays, row, nans)
        return row, nans

    def _written(self, skip: tuple[str, ...], prefix: str) -> _WritePlan:
        found = self._writes.get((skip, prefix))
        if found is None:
            found = self._writes[skip, prefix] = _WritePlan(self, skip, prefix)
        return found

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
        return self.plan(tuple(row), prefix, only).rows([tuple(row.values())], unpacker, [nans], [arrays])[0]

    def plan(self, columns: tuple[str, ...], prefix: str = "", only: frozenset[str] | None = None) -> RowPlan:
        """How to read rows that have `columns` (in that order), worked out once for every such row."""
        key = (columns, prefix, only)
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = RowPlan(self, columns, prefix, only)
        return found


class _WritePlan:
    """`Shape.to_row` for one `skip` and column prefix, worked out once: the fields read with one attrgetter call,
    each with its column name and kind, a nested dataclass's fields as a plan of their own."""

    def __init__(self, shape: Shape, skip: tuple[str, ...], prefix: str) -> None:
        fields = [f for f in shape.fields if f.kind != CHILD and f.name not in skip]
        self._get = getter(tuple(f.name for f in fields))
        self._fields = [
            (f.name, prefix + f.name, f.kind, f.inner._written((), f"{prefix}{f.name}_") if f.kind == NESTED else None)
            for f in fields
        ]

    def fill(self, obj: object, packer: Packer, arrays: ArrayCoder, row: dict[str, object], nans: list[str]) -> None:
        """Put the columns of `obj` that are not NULL into `row`, and the names of its NaN columns into `nans`."""
        for (name, column, kind, nested), value in zip(self._fields, self._get(obj)):
            if value is None:
                continue
            if kind == REAL:
                value = float(value)
                if value != value:  # NaN
                    nans.append(column)
                    continue
            elif kind == NESTED:
                nested.fill(value, packer, PLAIN, row, nans)
                continue
            elif kind == BOOL:
                value = int(bool(value))
            elif kind == JSON:
                items = tuple(value)
                value = _json_text(items, tuple(map(type, items)))
            elif kind == ARRAY:
                value = arrays.encode(name, np.asarray(value))
            elif kind == ARRAY_MAP:
                value = packer.pack({k: arrays.encode(f"{name}.{k}", np.asarray(v)) for k, v in value.items()})
            elif kind == PACKED:
                value = packer.pack(value)
            row[column] = value


def getter(names: tuple[str, ...]) -> Callable[[object], tuple]:
    """The attributes `names` of an object as a tuple, in one call (attrgetter gives a bare value for one name)."""
    if len(names) == 1:
        get = operator.attrgetter(names[0])
        return lambda obj: (get(obj),)
    return operator.attrgetter(*names) if names else lambda obj: ()


@functools.lru_cache(maxsize=4096)
def _json_text(values: tuple, types: tuple[type, ...]) -> str:
    """A flat list's JSON text, made once per distinct list (every layer row repeats its shape); `types` keeps
    1, 1.0 and True apart, which compare equal."""
    return json.dumps(list(values), separators=(",", ":"))


class RowPlan:
    """`Shape.values` for rows of one list of columns, a column at a time: which field each column holds and how
    it converts is found once, each column is converted in one pass over the rows, and each array column is
    decoded for all the rows at once (codec's `decode_arrays`), so a step of hundreds of layer rows costs a few
    passes per column rather than a search of each row's names and a dozen numpy calls per array."""

    def __init__(self, shape: Shape, columns: tuple[str, ...], prefix: str, only: frozenset[str] | None) -> None:
        index = {column: i for i, column in enumerate(columns)}
        self._absent: list[tuple[str, str]] = []  # (field, column) not in the rows: NaN when the row names it
        self._fields: list[tuple[str, int, str, str, type | None]] = []  # (field, index, column, kind, sequence)
        self._nested: list[tuple[str, RowPlan, type]] = []
        known = init_fields(shape.cls)  # only fields the constructor takes: rows build their records directly
        for f in shape.fields if only is None else [f for f in shape.fields if f.name in only]:
            column = prefix + f.name
            if f.kind == CHILD or f.name not in known:
                continue
            if f.kind == NESTED:
                if any(c.startswith(column + "_") for c in columns):  # else not read (some columns only): default
                    self._nested.append((f.name, RowPlan(f.inner, columns, column + "_", None), f.inner.cls))
            elif column not in index:
                self._absent.append((f.name, column))
            else:
                self._fields.append((f.name, index[column], column, f.kind, f.sequence))
        self._names = [name for name, *_ in self._fields] + [name for name, *_ in self._nested]

    def rows(
        self, rows: list[tuple], unpacker: Unpacker, nans: list[set[str]], arrays: list[ArrayCoder]
    ) -> list[dict[str, object]]:
        """Field values of each of `rows` (tuples in the plan's column order), with its NaN columns and coder."""
        if not rows:
            return []
        stored = list(zip(*rows))
        columns = [
            self._convert(list(stored[i]), kind, column, sequence, unpacker, arrays)
            for _, i, column, kind, sequence in self._fields
        ]
        for k in [k for k, row_nans in enumerate(nans) if row_nans]:  # SQLite keeps NaN as NULL
            for (_, _, column, _, _), values in zip(self._fields, columns):
                if values[k] is None and column in nans[k]:
                    values[k] = math.nan
        for _, plan, cls in self._nested:
            inner = plan.rows(rows, unpacker, nans, [PLAIN] * len(rows))
            columns.append([cls(**parts) if _any_set(parts) else None for parts in inner])
        found = [dict(zip(self._names, values)) for values in zip(*columns)] if columns else [{} for _ in rows]
        for values, row_nans in zip(found, nans):
            if row_nans:
                values.update((name, math.nan) for name, column in self._absent if column in row_nans)
        return found

    @staticmethod
    def _convert(
        values: list, kind: str, column: str, sequence: type | None, unpacker: Unpacker, arrays: list[ArrayCoder]
    ) -> list:
        """One column's stored values (None stays None) as field values."""
        if kind == REAL:
            return values if set(map(type, values)) <= _FLOAT else [None if v is None else float(v) for v in values]
        if kind == BOOL:
            return [None if v is None else bool(v) for v in values]
        if kind == JSON:
            return [None if v is None else sequence(_json(v)) for v in values]
        if kind == ARRAY:
            present = [k for k, v in enumerate(values) if v is not None]
            decoded = decode_arrays([values[k] for k in present], [arrays[k].base(column) for k in present])
            for k, array in zip(present, decoded):
                values[k] = array
            return values
        if kind == ARRAY_MAP:
            return [None if v is None else _array_map(unpacker.unpack(v), column, c) for v, c in zip(values, arrays)]
        if kind == PACKED:
            return [None if v is None else unpacker.unpack(v) for v in values]
        return values


_FLOAT = {float, type(None)}


def _any_set(values: dict[str, object]) -> bool:
    """Whether a nested record's columns hold anything (all NULL: the record was None)."""
    return any(v is not None for v in values.values())


def _array_map(items: dict, column: str, arrays: ArrayCoder) -> dict:
    """A map of names to array blobs decoded (format 1 packed the arrays themselves, format 2 their blobs)."""
    blobs = [k for k, v in items.items() if isinstance(v, bytes)]
    items.update(zip(blobs, decode_arrays([items[k] for k in blobs], [arrays.base(f"{column}.{k}") for k in blobs])))
    return items


@functools.lru_cache(maxsize=4096)
def _json(text: str) -> tuple:
    """A JSON list as a tuple, parsed once per distinct text: every layer row repeats its shape."""
    return tuple(json.loads(text))


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
