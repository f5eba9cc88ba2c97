"""Breakpoints: each condition stops at the right step and layer, and survives a save/load."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import bpviz
from bpviz.engine.session.breakpoints import Breakpoint, first_hit
from tests.engine.models import NanMaker, batch, dead_unit_mlp


def hits(model, breakpoints, steps=3, lr=0.01, x=None):
    x_, y = batch()
    x = x_ if x is None else x
    found = []
    with bpviz.watch(model) as w:
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        previous = None
        for _ in range(steps):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            record = w.step(loss)
            hit = first_hit(breakpoints, record, previous, w.changed_findings)
            if hit:
                found.append((hit.step, hit.layer, hit.breakpoint.kind))
            previous = record
    return found


def test_nan_breakpoint_stops_at_the_birth_layer_and_step_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), NanMaker(), nn.Linear(8, 3))
    assert hits(model, [Breakpoint("nan")], steps=3) == [(0, "1", "nan")]  # not again while NaN lives on


def test_dead_share_and_finding_breakpoints():
    found = hits(dead_unit_mlp(3), [Breakpoint("dead_share", threshold=0.3)])
    assert found == [(s, "1", "dead_share") for s in range(3)]
    assert hits(dead_unit_mlp(3), [Breakpoint("dead_share", threshold=0.5)]) == []
    found = hits(dead_unit_mlp(3), [Breakpoint("finding", finding_kind="dead_relu")])
    assert found == [(2, "1", "finding")]  # raised once the dead window is full
    assert hits(dead_unit_mlp(3), [Breakpoint("finding", severity="error")]) == []


def test_gradient_bounds_and_disabled_breakpoints():
    above = hits(dead_unit_mlp(0), [Breakpoint("grad_above", threshold=0.0, layer="2")], steps=1)
    assert above == [(0, "2", "grad_above")]
    assert hits(dead_unit_mlp(0), [Breakpoint("grad_above", threshold=0.0, enabled=False)], steps=1) == []
    assert hits(dead_unit_mlp(0), [Breakpoint("grad_below", threshold=1e-30)], steps=1) == []


def test_loss_jump():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
    found = hits(model, [Breakpoint("loss_jump", threshold=2.0)], steps=6, lr=50.0)
    assert found and found[0][2] == "loss_jump" and found[0][0] >= 1


def test_breakpoints_round_trip_through_json():
    saved = [Breakpoint("dead_share", threshold=0.25, layer="relu2", enabled=False), Breakpoint("nan")]
    loaded = [Breakpoint.from_dict(d) for d in json.loads(json.dumps([b.to_dict() for b in saved]))]
    assert loaded == saved
    assert loaded[0].describe() == "dead units above 25% on relu2"
    with pytest.raises(ValueError, match="unknown breakpoint kind 'typo'"):
        Breakpoint.from_dict({"kind": "typo"})
