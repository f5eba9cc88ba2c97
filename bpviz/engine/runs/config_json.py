"""A Config as JSON and back: stored in every run file, and read from `bpviz check --config FILE`."""
from __future__ import annotations

import dataclasses
import json

from bpviz.engine.config import Config


def config_to_json(config: Config) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def config_from_dict(values: dict, base: Config | None = None) -> Config:
    """`base` (the defaults) with `values` applied; unknown names and wrong types raise ValueError naming them."""
    base = base or Config()
    fields = {f.name: f for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown setting {', '.join(unknown)}; known settings are {', '.join(sorted(fields))}")
    changes = {}
    for name, value in values.items():
        default = getattr(base, name)
        try:
            if isinstance(default, tuple):
                changes[name] = tuple(float(v) for v in value)
            elif default is None or value is None:  # an optional number (the budget): None or a float
                changes[name] = None if value is None else float(value)
            else:
                changes[name] = type(default)(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting {name} expects a {type(default).__name__}, got {value!r}") from None
    return dataclasses.replace(base, **changes)


def config_from_json(text: str, base: Config | None = None) -> Config:
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError("expected a JSON object of settings, like {\"dead_warning\": 0.2}")
    return config_from_dict(values, base)
