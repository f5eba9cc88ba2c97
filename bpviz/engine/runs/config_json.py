"""A Config as JSON and back: stored in every run file, and read from `bpviz check --config FILE`."""

from __future__ import annotations

import dataclasses
import json
import typing

from bpviz.engine.config import Config
from bpviz.engine.runs.shape import strip_none


def config_to_json(config: Config) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def config_from_dict(values: dict, base: Config | None = None) -> Config:
    """`base` (the defaults) with `values` applied; unknown names and wrong types raise ValueError naming them."""
    base = base or Config()
    fields = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown setting {', '.join(unknown)}; known settings are {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(Config)
    changes = {}
    for name, value in values.items():
        hint = strip_none(hints[name])
        kind = typing.get_origin(hint) or hint
        try:
            if value is None and hint is not hints[name]:
                changes[name] = None  # an Optional setting left unset
            else:
                changes[name] = tuple(float(v) for v in value) if kind is tuple else kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting {name} expects a {getattr(kind, '__name__', kind)}, got {value!r}") from None
    return dataclasses.replace(base, **changes)


def config_from_json(text: str, base: Config | None = None) -> Config:
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError('expected a JSON object of settings, like {"dead_warning": 0.2}')
    return config_from_dict(values, base)
