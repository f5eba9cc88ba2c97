"""The Stepper: steps, validation, and failures in user code told with their layer and line."""

from __future__ import annotations

import textwrap

import pytest

from bpviz.engine.load.experiment import load_experiment
from bpviz.engine.session.stepper import Stepper
from bpviz.engine.user_error import UserCodeError

EXPERIMENT = '''
import torch
from torch import nn

class Flaky(nn.Module):
    """Raises on the call given by FAIL_AT (counting from 0)."""
    calls = 0
    def forward(self, x):
        Flaky.calls += 1
        if Flaky.calls - 1 == FAIL_AT:
            raise ValueError("flaky layer gave up")
        return x

FAIL_AT = {fail_at}

def build():
    Flaky.calls = 0
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), Flaky(), nn.ReLU(), nn.Linear(8, 3))
    data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(3)]
    return {{"model": model, "train_data": data, "val_data": data[:1]}}
'''


def experiment(tmp_path, fail_at=-1):
    path = tmp_path / "exp.py"
    path.write_text(textwrap.dedent(EXPERIMENT.format(fail_at=fail_at)))
    return load_experiment(path)


def test_steps_cycle_through_the_data(tmp_path):
    stepper = Stepper(experiment(tmp_path))
    records = [stepper.step() for _ in range(7)]
    assert [r.step for r in records] == list(range(7))
    assert stepper.step_index == 7
    assert records[0].loss == pytest.approx(records[3].loss, rel=0.2)  # same batch a new epoch later
    stepper.close()


def test_forward_failure_names_layer_file_and_line_and_keeps_history(tmp_path):
    stepper = Stepper(experiment(tmp_path, fail_at=2))
    stepper.step()
    stepper.step()
    with pytest.raises(UserCodeError) as caught:
        stepper.step()
    error = caught.value
    assert error.what == "the forward pass failed at step 2"
    assert error.layer == "2"
    assert error.where == f"{tmp_path / 'exp.py'}:11"  # the raise in Flaky.forward
    assert error.why == "ValueError: flaky layer gave up"
    assert "Traceback" in error.details
    assert len(stepper.history) == 2
    record = stepper.step()  # the window stays usable: the next step runs normally
    assert record.step == 2 and len(record.forwards) == 1
    stepper.close()


def test_validation_runs_in_eval_mode_and_restores_training(tmp_path):
    exp = experiment(tmp_path)
    stepper = Stepper(exp)
    stepper.step()
    metrics = stepper.validate()
    assert set(metrics) == {"loss", "accuracy"}
    assert exp.model.training and exp.model[1].training
    assert stepper.history.validation == [(0, metrics)]
    assert [f.kind for f in stepper.findings] == []
    stepper.close()


def test_user_evaluate_that_forgets_eval_is_caught_and_modes_restored(tmp_path):
    exp = experiment(tmp_path)

    def evaluate(model, data):
        import torch

        with torch.no_grad():
            return {"n": float(sum(len(model(x)) for x, _ in data))}

    exp.evaluate = evaluate
    stepper = Stepper(exp)
    stepper.step()
    exp.model.eval()
    exp.model.train()
    assert stepper.validate() == {"n": 16.0}
    assert [(f.kind, f.layer, f.step) for f in stepper.findings] == [("train_mode_in_eval", "1", 0)]
    stepper.close()


def test_evaluate_returning_the_wrong_thing(tmp_path):
    exp = experiment(tmp_path)
    exp.evaluate = lambda model, data: 0.5
    stepper = Stepper(exp)
    with pytest.raises(UserCodeError) as caught:
        stepper.validate()
    assert caught.value.why == "TypeError: evaluate() must return a dict of metrics, got float"
    stepper.close()
