"""What "dead" means for each activation family, and advice in the order the evidence supports.

A plain ReLU unit with no positive output passes no gradient: dead. A LeakyReLU
(or GELU) unit with no positive output still passes one: inactive, not dead.
"""

from __future__ import annotations

import torch

from bpviz.engine.diagnosis import dead_relu
from bpviz.engine.load.experiment import load_experiment
from bpviz.engine.session import remedies
from bpviz.engine.session.stepper import Stepper
from tests.engine.test_remedies import DYING, run, small


def _finding(stepper: Stepper, kind: str, layer: str):
    found = [f for f in stepper.findings if (f.kind, f.layer) == (kind, layer)]
    assert len(found) == 1, [(f.kind, f.layer) for f in stepper.findings]
    return found[0]


def test_units_dead_from_step_0_with_a_negative_bias_point_to_the_initialisation_first():
    stepper = Stepper(load_experiment(DYING))
    try:
        run(stepper, 3)
        finding = _finding(stepper, "dead_relu", "relu2")
    finally:
        stepper.close()
    assert finding.remedies[0] == dead_relu.INITIALISATION
    assert finding.remedies.index(dead_relu.LEARNING_RATE) == len(finding.remedies) - 1
    assert "went silent at step 0, with a bias of -2 (median)" in finding.message
    assert "initialisation is the likely cause" in finding.message
    assert "Dead here means" in finding.explanation and "zero gradient" in finding.explanation


def test_units_that_died_during_training_point_to_the_learning_rate_first():
    stepper = small(dead=0)
    run(stepper, 2)  # all alive for two steps
    fc = stepper.experiment.model.fc
    with torch.no_grad():  # what one huge update does: three units' inputs pushed far below zero
        fc.weight[:3] = 0.0
        fc.bias[:3] = -5.0
    run(stepper, 3)
    finding = _finding(stepper, "dead_relu", "act")
    stepper.close()
    assert "3 of 8 units of act" in finding.message and "went silent at step 2, with a bias of -5" in finding.message
    assert "initialisation" not in finding.message
    assert finding.remedies[0] == dead_relu.LEARNING_RATE


def test_after_the_leakyrelu_remedy_units_are_inactive_not_dead():
    stepper = small(dead=3)
    run(stepper, 3)
    assert _finding(stepper, "dead_relu", "act").active
    stepper.apply(remedies.replace_activation(stepper, "act", "leaky_relu"))
    record = run(stepper, 3)
    stepper.close()
    assert record.layer("act").dead_units == 3  # still never positive: counted, with the right word
    dead = _finding(stepper, "dead_relu", "act")
    assert not dead.active  # no longer dead: the units get a gradient now
    inactive = _finding(stepper, "inactive_units", "act")
    assert inactive.active and inactive.severity == "info"
    assert inactive.message.startswith("3 of 8 units of act (38%) are inactive since step 0")
    assert "not dead: LeakyReLU still passes them a gradient" in inactive.message
    assert "still passes a gradient" in inactive.explanation


def test_units_that_revive_and_die_again_are_dead_since_they_died_again():
    """The finding came back still saying "since step 2", while its message said they went silent later."""
    stepper = small(dead=3)
    window = stepper.watcher.config.dead_window
    try:
        run(stepper, window)
        finding = _finding(stepper, "dead_relu", "act")
        assert (finding.step, finding.active) == (window - 1, True)
        stepper.apply(remedies.reinit_dead_units(stepper, "act"))
        run(stepper, 2)
        assert not finding.active  # revived
        fc = stepper.experiment.model.fc
        with torch.no_grad():  # dead again from the next step on
            fc.weight[:3] = 0.0
            fc.bias[:3] = -5.0
        died = stepper.step_index
        record = run(stepper, window)
    finally:
        stepper.close()
    assert finding.active and finding.step == died + window - 1  # held again once silent for the whole window
    assert f"went silent at step {died}, with a bias of -5" in finding.message
    assert record.layer("act").dead_unit_ids.tolist() == [0, 1, 2]
    assert record.layer("act").dead_since.tolist() == [died] * 3  # kept with the step, for a recording to tell
