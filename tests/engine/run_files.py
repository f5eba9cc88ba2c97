"""Helpers for the run-file tests: deep equality of records, and a seeded training loop that records."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import bpviz


def assert_same(live, stored, path: str = "record") -> None:
    """Every field equal, arrays with their dtype, NaN equal to NaN, and of the same types."""
    if isinstance(live, np.ndarray) or isinstance(stored, np.ndarray):
        assert isinstance(live, np.ndarray) and isinstance(stored, np.ndarray), path
        assert live.dtype == stored.dtype and live.shape == stored.shape, (path, live.dtype, stored.dtype)
        assert np.array_equal(live, stored, equal_nan=live.dtype.kind == "f"), path
    elif dataclasses.is_dataclass(live):
        assert type(live) is type(stored), path
        for field in dataclasses.fields(live):
            assert_same(getattr(live, field.name), getattr(stored, field.name), f"{path}.{field.name}")
    elif isinstance(live, (list, tuple)):
        assert type(live) is type(stored) and len(live) == len(stored), (path, live, stored)
        for index, (a, b) in enumerate(zip(live, stored)):
            assert_same(a, b, f"{path}[{index}]")
    elif isinstance(live, dict):
        assert live.keys() == stored.keys(), path
        for key in live:
            assert_same(live[key], stored[key], f"{path}[{key!r}]")
    elif isinstance(live, float) and math.isnan(live):
        assert isinstance(stored, float) and math.isnan(stored), (path, stored)
    else:
        assert type(live) is type(stored) and live == stored, (path, live, stored)


def seeded_run(record, steps: int = 10, lr: float = 0.1, lr_from_step5: float | None = None, level: str = "full"):
    """A small seeded MLP trained on one batch while recording (every statistic of every step by default)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 3))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    records = []
    with bpviz.watch(model, record=record, level=level) as w:
        for step in range(steps):
            if step == 5 and lr_from_step5 is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_from_step5
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            records.append(w.step(loss))
    return records, w
