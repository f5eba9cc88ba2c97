"""The experiment process's driver: a step is answered once it is in the run file, the state query reads the
training side itself, and the shared position says where the process is (what a crash leaves for the window)."""

from __future__ import annotations

import multiprocessing
import textwrap

import pytest

from bpviz.engine.runs.reader import open_run
from bpviz.engine.session.breakpoints import Breakpoint
from bpviz.engine.session.driver import SessionDriver
from bpviz.engine.session.position import Position, Where
from bpviz.engine.session.protocol import LoadRequest

EXPERIMENT = """
import torch
from torch import nn

SEEN = []  # where the shared position said the process was, read from inside the user's own code


class Looks(nn.Module):
    def forward(self, x):
        SEEN.append(POSITION.read())
        return Backward.apply(x)


class Backward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        SEEN.append(POSITION.read())
        return grad


def build():
    torch.manual_seed(0)
    model = nn.Sequential()
    for name, layer in (("fc1", nn.Linear(4, 8)), ("looks", Looks()), ("fc2", nn.Linear(8, 3))):
        model.add_module(name, layer)
    data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
    return {"model": model, "train_data": data, "optimizer": torch.optim.SGD(model.parameters(), lr=0.25)}
"""


def driven(tmp_path):
    """A loaded driver (recording into tmp_path), its answers, its position and the experiment file's globals."""
    path = tmp_path / "looks.py"
    path.write_text(textwrap.dedent(EXPERIMENT))
    answers: list[tuple] = []
    position = Position(multiprocessing.get_context("spawn"))
    driver = SessionDriver(lambda name, *args: answers.append((name, *args)), position)
    driver.load(LoadRequest(path, record=tmp_path / "run.bpviz"))
    assert answers[0][0] == "loaded", answers
    namespace = type(driver.stepper.experiment.model.looks).forward.__globals__  # the experiment file's globals
    namespace["POSITION"] = position
    return driver, answers, position, namespace


def test_a_step_is_answered_once_it_is_in_the_run_file(tmp_path):
    driver, answers, _, _ = driven(tmp_path)
    in_file = []
    emit = driver.emit

    def answer(name, *args):
        if name == "stepped":
            with open_run(tmp_path / "run.bpviz") as run:
                in_file.append((args[0], list(run.steps())))
        emit(name, *args)

    driver.emit = answer
    driver.step()
    driver.step()
    assert in_file == [(0, [0]), (1, [0, 1])]
    driver.close()


def test_the_state_query_reads_the_training_side_and_sees_the_hooks_go_on_close(tmp_path):
    driver, answers, _, _ = driven(tmp_path)
    driver.breakpoints = [Breakpoint("nan")]
    driver.step()
    driver.apply_remedy("lower_lr", (10.0,))
    driver.state(tensors=True)
    state = answers[-1][1]
    model = driver.stepper.experiment.model
    assert state["loaded"] and state["step_index"] == 1 and state["run_file"] == tmp_path / "run.bpviz"
    assert state["hyperparameters"]["lr"] == 0.025 and state["breakpoints"] == [Breakpoint("nan")]
    hooks_on_model = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    assert state["hooks"] == hooks_on_model > 0
    assert all((a == b).all() for a, b in zip(state["parameters"], model.parameters()))
    driver.close()
    driver.state()
    after = answers[-1][1]
    assert not after["loaded"] and after["hooks"] == 0 and "parameters" not in after


def test_the_position_says_which_phase_and_layer_the_process_is_in(tmp_path):
    driver, _, position, namespace = driven(tmp_path)
    driver.step()
    driver.step()
    assert namespace["SEEN"] == [
        Where(0, "forward", "looks"),
        Where(0, "backward", "looks"),
        Where(1, "forward", "looks"),
        Where(1, "backward", "looks"),
    ]
    assert position.read() == Where(2, None, None) and position.read().words() == "at step 2"
    assert namespace["SEEN"][1].words() == "in backward of looks at step 0"
    driver.close()


def test_a_run_file_that_stops_taking_steps_is_told_once_and_training_goes_on(tmp_path):
    driver, answers, _, _ = driven(tmp_path)
    driver.step()
    driver.stepper.watcher.recorder.writer.failure = (1, "the disk is full: no space left on device")
    with pytest.warns(RuntimeWarning, match="stopped at step 1"):  # the recorder's own one warning
        driver.step()  # the writer now skips every job: flush() must not wait for it
        driver.step()
    failures = [a[1] for a in answers if a[0] == "failed"]
    assert [f.what for f in failures] == ["Recording stopped at step 1: the window shows no later step"]
    assert failures[0].why.startswith("the disk is full") and failures[0].where == str(tmp_path / "run.bpviz")
    assert [a[1] for a in answers if a[0] == "stepped"] == [0, 1, 2]  # training went on
    driver.close()
