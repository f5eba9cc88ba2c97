"""The Stepper's events: which step a validation, a remedy or its undo belongs to, and what it is called."""

from __future__ import annotations

import pytest
import torch

from bpviz.engine.session import remedies
from bpviz.engine.session.breakpoints import Breakpoint
from bpviz.engine.session.events import Intervened, Validated
from tests.engine.test_remedies import small


def test_the_events_say_which_step_each_decision_belongs_to():
    stepper = small(dead=3)
    before_any_step = stepper.validate_event()
    assert before_any_step.step == -1 and not before_any_step.kept  # a validation before any step belongs to none
    for _ in range(3):
        stepper.step()
    assert stepper.remedy_event("set_gradient_clipping", (1.0,)) == Intervened(3, "gradient clipping at 1")
    assert stepper.undo_event() == Intervened(3, "undo: gradient clipping at 1")
    assert stepper.validate_event().step == 2  # after step 2, the latest completed
    assert stepper.history.interventions == [(3, "gradient clipping at 1"), (3, "undo: gradient clipping at 1")]


def test_remedies_by_name_and_the_learning_rate_divided():
    stepper = small(dead=3, lr=0.5)
    stepper.step()
    event = stepper.remedy_event("lower_lr", (10.0,))
    assert event == Intervened(1, "lr 0.5 -> 0.05")
    assert stepper.experiment.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="unknown remedy 'nope'"):
        stepper.remedy_event("nope")
    assert set(remedies.REMEDIES) == {
        "replace_activation",
        "reinit_dead_units",
        "set_hyperparameter",
        "set_gradient_clipping",
        "lower_lr",
    }


def test_adams_beta1_is_read_and_set_as_momentum():
    stepper = small(dead=3, optimizer=torch.optim.Adam, lr=0.01, betas=(0.8, 0.99))
    assert stepper.hyperparameters() == {"lr": 0.01, "momentum": 0.8, "weight_decay": 0, "clip": None}
    stepper.remedy_event("set_hyperparameter", ("momentum", 0.5))
    assert stepper.experiment.optimizer.param_groups[0]["betas"] == (0.5, 0.99)
    assert stepper.hyperparameters()["momentum"] == 0.5


def test_a_breakpoint_compares_the_latest_step_with_the_one_before():
    stepper = small(dead=3)
    stepper.step()
    jump = [Breakpoint(kind="loss_jump", threshold=0.0)]  # any positive loss is a jump over 0 x the previous
    assert stepper.breakpoint_hit(jump) is None  # one step: nothing to compare with
    stepper.step()
    hit = stepper.breakpoint_hit(jump)
    assert hit is not None and hit.step == 1
    assert stepper.breakpoint_hit([]) is None


def test_a_validation_without_data_is_told_but_not_kept():
    stepper = small(dead=3)
    stepper.step()
    event = stepper.validate_event()
    assert isinstance(event, Validated) and event.metrics == {} and event.step == 0 and not event.kept


def test_a_validation_with_data_is_kept_at_the_latest_step():
    stepper = small(dead=3)
    stepper.experiment.val_data = stepper.experiment.train_data
    stepper.step()
    stepper.step()
    event = stepper.validate_event()
    assert event.kept and event.step == 1 and set(event.metrics) == {"loss", "accuracy"}
    assert stepper.history.validation == [(1, event.metrics)]
