"""The run as a viewer sees it: the Stepper's events carry every decision, and a RunView built from them matches."""

from __future__ import annotations

import pytest
import torch

from bpviz.engine.session import remedies
from bpviz.engine.session.breakpoints import Breakpoint
from bpviz.engine.session.events import Intervened, RunView, StepRecorded, Validated
from tests.engine.test_remedies import small


def test_a_run_view_fed_the_events_holds_what_the_engine_holds():
    stepper = small(dead=3)
    view = RunView(100)
    before_any_step = stepper.validate_event()
    assert before_any_step.step == -1  # a validation before any step belongs to no step
    view.apply(before_any_step)
    for _ in range(3):
        event = stepper.step_event()
        assert isinstance(event, StepRecorded)
        view.apply(event)
    view.apply(stepper.remedy_event("set_gradient_clipping", (1.0,)))
    view.apply(stepper.undo_event())
    validated = stepper.validate_event()
    assert validated.step == 2  # after step 2, the latest completed
    view.apply(validated)
    engine = stepper.history
    assert [r.step for r in view.history.records] == [r.step for r in engine.records] == [0, 1, 2]
    assert view.history.losses == engine.losses
    assert view.history.validation == engine.validation == []  # no validation data: no point on the curve
    assert (
        view.history.interventions
        == engine.interventions
        == [(3, "gradient clipping at 1"), (3, "undo: gradient clipping at 1")]
    )
    assert [f.key for f in view.findings] == [f.key for f in stepper.findings]


def test_findings_sent_are_snapshots_the_engine_does_not_change_later():
    stepper = small(dead=3)
    first = stepper.step_event()
    kept = [(f.key, f.step, f.message) for f in first.findings]
    for _ in range(4):
        stepper.step_event()
    assert [(f.key, f.step, f.message) for f in first.findings] == kept


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
    view = RunView(10)
    view.apply(event)
    assert event.kept and event.step == 1 and set(event.metrics) == {"loss", "accuracy"}
    assert view.history.validation == stepper.history.validation == [(1, event.metrics)]
