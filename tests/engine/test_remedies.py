"""Remedies applied live, undone exactly, and the dead-unit evidence they act on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bpviz.engine.diagnosis.unit_forensics import dead_units
from bpviz.engine.load.experiment import Experiment, load_experiment
from bpviz.engine.record.history import History
from bpviz.engine.session import remedies
from bpviz.engine.session.stepper import Stepper

DYING = Path(__file__).resolve().parents[2] / "sample_models" / "dying_relu.py"


def small(dead: int = 3, functional: bool = False, optimizer=torch.optim.SGD, **opt_args) -> Stepper:
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 8)
            self.act = nn.ReLU()
            self.out = nn.Linear(8, 3)

        def forward(self, x):
            h = self.fc(x)
            return self.out(F.relu(h) if functional else self.act(h))

    model = Net()
    with torch.no_grad():
        model.fc.weight[:dead] = 0.0
        model.fc.bias[:dead] = -1.0
        model.fc.bias[dead:] = 3.0
    return stepper_for(model, optimizer, **opt_args)


def stepper_for(model: nn.Module, optimizer=torch.optim.SGD, **opt_args) -> Stepper:
    """A Stepper training `model` on one seeded batch of 16 samples of 4 features, 3 classes."""
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))]
    opt = optimizer(model.parameters(), **(opt_args or {"lr": 0.01}))
    return Stepper(Experiment(Path("exp.py"), model, data, nn.CrossEntropyLoss(), opt))


def run(stepper: Stepper, steps: int):
    return [stepper.step() for _ in range(steps)][-1]


def test_dead_units_evidence():
    stepper = small(dead=3)
    run(stepper, 3)
    found = dead_units(stepper.history, stepper.watcher.catalog, stepper.watcher.tracker, "act")
    assert [d.unit for d in found] == [0, 1, 2]
    assert all(d.died_at == 0 and d.bias == -1.0 and d.weight_norm == 0.0 for d in found)
    assert all(d.preact_max == pytest.approx(-1.0) for d in found)


def test_reinit_brings_the_dying_relu_samples_dead_count_down():
    stepper = Stepper(load_experiment(DYING))
    before = run(stepper, 6).layer("relu2").dead_units
    stepper.apply(remedies.reinit_dead_units(stepper, "relu2"))
    after = [stepper.step().layer("relu2").dead_units for _ in range(6)]
    assert before > 32
    assert max(after) < before / 4
    assert stepper.history.interventions == [(6, f"relu2: re-initialised {before} dead units")]


def test_reinit_undo_restores_weights_and_momentum():
    stepper = small(dead=3, momentum=0.9, lr=0.01)
    run(stepper, 3)
    fc = stepper.experiment.model.fc
    saved = fc.weight.detach().clone(), fc.bias.detach().clone()
    momentum = stepper.experiment.optimizer.state[fc.weight]["momentum_buffer"].clone()
    stepper.apply(remedies.reinit_dead_units(stepper, "act"))
    assert not torch.equal(fc.weight[:3], saved[0][:3]) and torch.equal(fc.weight[3:], saved[0][3:])
    assert torch.equal(fc.bias[:3], torch.zeros(3))
    assert stepper.undo_last() is not None
    assert torch.equal(fc.weight, saved[0]) and torch.equal(fc.bias, saved[1])
    assert torch.equal(stepper.experiment.optimizer.state[fc.weight]["momentum_buffer"], momentum)


@pytest.mark.parametrize("functional", [False, True])
def test_replace_activation_and_undo(functional):
    stepper = small(dead=3, functional=functional)
    layer = "relu()" if functional else "act"
    assert run(stepper, 3).layer(layer).dead_units == 3
    stepper.apply(remedies.replace_activation(stepper, layer, "leaky_relu"))
    record = run(stepper, 1)
    replaced = record.layer(layer)
    assert replaced.type == ("leaky_relu" if functional else "LeakyReLU")
    assert replaced.min < 0  # negative inputs now pass through, scaled
    assert replaced.units == 8  # still tracked, to compare before and after
    with pytest.raises(ValueError, match="already; replacing it with leaky_relu would change nothing"):
        remedies.replace_activation(stepper, layer, "leaky_relu")  # it once added a no-op mark and undo entry
    stepper.undo_last()
    assert run(stepper, 1).layer(layer).type == ("relu" if functional else "ReLU")
    stepper.close()
    assert sum(len(m._forward_hooks) for m in stepper.experiment.model.modules()) == 0


def test_hyperparameters_and_clipping():
    stepper = small(optimizer=torch.optim.Adam, lr=0.001)
    run(stepper, 1)
    lr = stepper.apply(remedies.set_hyperparameter(stepper, "lr", 0.01))
    stepper.apply(remedies.set_hyperparameter(stepper, "momentum", 0.5))
    assert stepper.experiment.optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    assert lr.label == "lr 0.001 -> 0.01"
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        remedies.set_hyperparameter(stepper, "beta", 1.0)
    stepper.apply(remedies.set_gradient_clipping(stepper, 1e-6))
    before = [p.detach().clone() for p in stepper.experiment.model.parameters()]
    run(stepper, 1)
    grads = torch.sqrt(sum(p.grad.norm() ** 2 for p in stepper.experiment.model.parameters()))
    assert float(grads) == pytest.approx(1e-6, rel=1e-3)
    assert any(not torch.equal(a, b) for a, b in zip(before, stepper.experiment.model.parameters()))
    for _ in range(3):
        stepper.undo_last()
    assert stepper.experiment.optimizer.param_groups[0]["lr"] == 0.001
    assert stepper.experiment.optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    assert stepper.clip_grad_norm is None
    assert [label for _, label in stepper.history.interventions][-1] == "undo: lr 0.001 -> 0.01"


def test_remedies_in_force_are_the_stepper_s_undoable_remedies():
    stepper = small(dead=3)
    run(stepper, 2)
    stepper.apply(remedies.set_hyperparameter(stepper, "lr", 0.05))
    stepper.apply(remedies.replace_activation(stepper, "act", "leaky_relu"))
    run(stepper, 1)
    stepper.undo_last()
    counts = [(len(stepper.remedies), stepper.history.remedies_in_force())]
    stepper.undo_last()
    counts.append((len(stepper.remedies), stepper.history.remedies_in_force()))
    assert stepper.undo_last() is None  # nothing left: and the history says so
    assert counts == [(1, 1), (0, 0)] and stepper.history.remedies_in_force() == 0


def test_remedies_in_force_count_what_undo_can_take_back():
    history = History()
    assert history.remedies_in_force() == 0
    history.interventions = [(3, "lr 0.5 -> 0.05"), (3, "gradient clipping at 2"), (5, "undo: gradient clipping at 2")]
    assert history.remedies_in_force() == 1
    history.interventions.append((6, "undo: lr 0.5 -> 0.05"))
    assert history.remedies_in_force() == 0
    assert history.before(6).remedies_in_force() == 1  # a rewind before the second undo keeps the first remedy


def test_reinit_after_a_leaky_swap_says_it_reinitialised_inactive_units():
    stepper = small(dead=3)
    run(stepper, 3)
    stepper.apply(remedies.replace_activation(stepper, "act", "leaky_relu"))
    run(stepper, 1)
    remedy = stepper.apply(remedies.reinit_dead_units(stepper, "act"))
    stepper.close()
    assert remedy.label == "act: re-initialised 3 inactive units"


def test_the_type_in_force_follows_swaps_and_undos_no_step_has_run_through_yet():
    from bpviz.engine.record.records import StepRecord

    type_in_force = remedies.type_in_force
    history = History()
    history.append(StepRecord(4, 0.5, []))
    history.interventions += [(3, "relu1: ReLU -> GELU")]  # before the latest step: its record shows it already
    assert type_in_force(history, "relu1", "ReLU") == "ReLU"
    history.interventions += [(5, "relu2: ReLU -> LeakyReLU"), (5, "lr 0.1 -> 0.01")]
    assert type_in_force(history, "relu2", "ReLU") == "LeakyReLU"
    assert type_in_force(history, "relu1", "ReLU") == "ReLU"  # another layer's swap, and a learning rate's change
    history.interventions += [(5, "undo: lr 0.1 -> 0.01"), (5, "undo: relu2: ReLU -> LeakyReLU")]
    assert type_in_force(history, "relu2", "ReLU") == "ReLU"
    history.interventions += [(5, "relu()#2: relu -> gelu")]  # a functional activation's swap
    assert type_in_force(history, "relu()#2", "relu") == "gelu"
    history.interventions += [(5, "blocks.a: b: ReLU -> GELU")]  # a ModuleDict key holding ": "
    assert type_in_force(history, "blocks.a: b", "ReLU") == "GELU"
    assert type_in_force(history, "blocks.a", "ReLU") == "ReLU"
