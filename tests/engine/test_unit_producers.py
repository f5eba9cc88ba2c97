"""The layer feeding a ReLU's units is found along its input, not as the nearest earlier layer of that width.

In `act_a(fc_a(x)) * torch.sigmoid(fc_b(x))`, with `fc_b` called after `fc_a`,
the nearest earlier layer with one bias per unit of `act_a` is `fc_b`: the
dead-unit finding then quoted fc_b's bias, and re-initialising the dead units
gave fresh rows to fc_b, whose units were alive, leaving the dead ones dead.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from bpviz.engine.diagnosis.dead_relu import feeding_biases
from bpviz.engine.diagnosis.unit_forensics import dead_units
from bpviz.engine.session import remedies
from bpviz.engine.session.stepper import Stepper
from tests.engine.test_remedies import run, stepper_for


class TwoBranches(nn.Module):
    """Both branches' Linears run before either activation; `gate` picks a sigmoid or a second ReLU for b."""

    def __init__(self, gate: str) -> None:
        super().__init__()
        self.gate = gate
        self.fc_a, self.fc_b = nn.Linear(4, 8), nn.Linear(4, 8)
        self.act_a, self.act_b = nn.ReLU(), nn.ReLU()
        self.head = nn.Linear(8, 3)
        with torch.no_grad():
            self.fc_a.weight[:5] = 0.0  # five of a's units never fire: their input is their bias, -4
            self.fc_a.bias[:5] = -4.0
            self.fc_a.bias[5:] = 3.0
            self.fc_b.weight[:2] = 0.0  # two of b's units never fire either, at a bias of -6
            self.fc_b.bias[:2] = -6.0
            self.fc_b.bias[2:] = 3.0

    def forward(self, x):
        a, b = self.fc_a(x), self.fc_b(x)
        return self.head(self.act_a(a) * (torch.sigmoid(b) if self.gate == "sigmoid" else self.act_b(b)))


def two_branches(gate: str) -> Stepper:
    torch.manual_seed(0)
    return stepper_for(TwoBranches(gate))


def _dead_finding(stepper: Stepper, layer: str):
    found = [f for f in stepper.findings if (f.kind, f.layer) == ("dead_relu", layer)]
    assert len(found) == 1, [(f.kind, f.layer) for f in stepper.findings]
    return found[0]


def test_the_dead_finding_quotes_the_bias_of_the_layer_feeding_the_units():
    stepper = two_branches("sigmoid")
    try:
        run(stepper, 3)
        finding = _dead_finding(stepper, "act_a")
        found = dead_units(stepper.history, stepper.watcher.catalog, stepper.watcher.tracker, "act_a")
    finally:
        stepper.close()
    assert "5 of 8 units of act_a" in finding.message
    assert "with a bias of -4 (median)" in finding.message
    assert [d.unit for d in found] == [0, 1, 2, 3, 4]
    assert all(d.bias == -4.0 and d.weight_norm == 0.0 for d in found)


def test_each_of_two_relus_whose_linears_ran_first_gets_its_own_bias():
    stepper = two_branches("relu")
    try:
        record = run(stepper, 3)
        a, b = _dead_finding(stepper, "act_a"), _dead_finding(stepper, "act_b")
    finally:
        stepper.close()
    assert "5 of 8 units of act_a" in a.message and "with a bias of -4 (median)" in a.message
    assert "2 of 8 units of act_b" in b.message and "with a bias of -6 (median)" in b.message
    assert sorted(record.producer_bias) == ["act_a", "act_b"]  # kept under the ReLU's name, one bias each


def test_reinit_gives_fresh_rows_to_the_dead_units_own_linear_only():
    stepper = two_branches("sigmoid")
    try:
        run(stepper, 3)
        model = stepper.experiment.model
        before_a, before_b = model.fc_a.weight.detach().clone(), model.fc_b.weight.detach().clone()
        stepper.apply(remedies.reinit_dead_units(stepper, "act_a"))
        assert torch.equal(model.fc_a.bias[:5], torch.zeros(5))
        assert not torch.equal(model.fc_a.weight[:5], before_a[:5])
        assert torch.equal(model.fc_a.weight[5:], before_a[5:])
        assert torch.equal(model.fc_b.weight, before_b)
        assert run(stepper, 1).layer("act_a").dead_units < 5
    finally:
        stepper.close()


def test_a_record_keyed_by_the_feeding_layer_still_gives_each_relu_its_bias():
    """Runs recorded before the biases were kept under the ReLU's name keep them under the feeding Linear's."""
    stepper = two_branches("sigmoid")
    try:
        record = run(stepper, 1)
    finally:
        stepper.close()
    bias = record.producer_bias["act_a"]
    older = dataclasses.replace(record, producer_bias={"fc_a": bias})
    assert feeding_biases(older)["act_a"] is bias
    assert feeding_biases(record) == {"act_a": bias}


def test_between_a_linear_and_its_relu_a_norm_layers_shift_is_the_bias_quoted():
    """A BatchNorm removes the Linear's bias before the units see it: their input is gamma * x_hat + beta."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].bias.fill_(2.0)  # normalised away: says nothing of the units
        model[1].weight[:4] = 0.0  # four units' input is their shift, beta = -3
        model[1].bias[:4] = -3.0
    stepper = stepper_for(model)
    try:
        record = run(stepper, 3)
        finding = _dead_finding(stepper, "2")
        found = dead_units(stepper.history, stepper.watcher.catalog, stepper.watcher.tracker, "2")
    finally:
        stepper.close()
    assert "4 of 8 units of 2" in finding.message and "with a bias of -3 (median)" in finding.message
    assert [(d.unit, d.bias) for d in found] == [(0, -3.0), (1, -3.0), (2, -3.0), (3, -3.0)]
    assert record.producer_bias["2"].tolist()[:4] == [-3.0] * 4
