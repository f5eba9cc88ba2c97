"""The sample list the start page shows, and that every sample is a loadable, documented lesson."""

from __future__ import annotations

import ast

import pytest
from torch import nn

from bpviz.engine.load.experiment import load_experiment
from bpviz.engine.load.samples import SAMPLES_DIR, list_samples

EXPECTED = {
    "dying_relu.py",
    "exploding.py",
    "forgot_eval.py",
    "healthy_resnet.py",
    "softmax_cross_entropy.py",
    "vanishing_sigmoid.py",
}


def test_list_samples_reads_headlines_without_importing(tmp_path):
    (tmp_path / "b.py").write_text('"""Second sample.\n\nMore text."""\nraise SystemExit("never run")\n')
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    (tmp_path / "_helpers.py").write_text('"""Shared code."""\n')
    (tmp_path / "notes.txt").write_text("not python")
    assert list_samples(tmp_path) == [
        (tmp_path / "a.py", "a"),
        (tmp_path / "b.py", "Second sample."),
        (tmp_path / "broken.py", "broken"),
    ]


def test_list_samples_of_a_missing_folder_is_empty(tmp_path):
    assert list_samples(tmp_path / "absent") == []


def test_shipped_samples_are_listed_with_their_headlines():
    samples = dict((path.name, line) for path, line in list_samples())
    assert EXPECTED <= set(samples)
    assert samples["dying_relu.py"] == "Dying ReLU: most units of the second hidden layer go silent for good."
    assert all(path.parent == SAMPLES_DIR for path, _ in list_samples())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_loads_and_says_what_to_look_for_and_the_fix(name):
    path = SAMPLES_DIR / name
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert "What to look for:" in docstring and "The fix:" in docstring
    experiment = load_experiment(path)
    assert isinstance(experiment.model, nn.Module)
    inputs, targets = next(iter(experiment.train_data))
    assert experiment.model(inputs).shape[0] == targets.shape[0]
