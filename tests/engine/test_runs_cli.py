"""The command line over run files: check --record, check RUN.bpviz, compare, and the samples' fixed twins."""

from __future__ import annotations

import json

import pytest

import bpviz
from bpviz import cli
from bpviz.engine.load.samples import SAMPLES_DIR
from tests.engine.run_files import seeded_run


def test_checking_a_recording_gives_the_live_report_and_exit_code(tmp_path, capsys):
    live = cli.main(
        [
            "check",
            str(SAMPLES_DIR / "dying_relu.py"),
            "--steps",
            "6",
            "--record",
            f"{tmp_path}/runs/",
            "--json",
            str(tmp_path / "live.json"),
        ]
    )
    (run,) = (tmp_path / "runs").iterdir()
    live_out = capsys.readouterr().out
    again = cli.main(["check", str(run), "--json", str(tmp_path / "again.json")])
    assert live == again == cli.EXIT_FOUND_ERRORS
    assert capsys.readouterr().out == live_out
    assert json.loads((tmp_path / "live.json").read_text()) == json.loads((tmp_path / "again.json").read_text())
    # new thresholds apply to the recording: relu2's dead share is an error at 0.5, not at 0.999
    assert cli.main(["check", str(run), "--set", "dead_error=0.999", "--set", "dead_warning=0.999"]) == cli.EXIT_CLEAN
    assert cli.main(["check", str(run), "--set", "no_such_threshold=1"]) == cli.EXIT_COULD_NOT_RUN
    assert "unknown setting no_such_threshold" in capsys.readouterr().err


@pytest.mark.parametrize("twin", ["dying_relu_fixed.py", "vanishing_sigmoid_fixed.py"])
def test_each_fixed_twin_checks_clean(twin):
    assert cli.main(["check", str(SAMPLES_DIR / twin)]) == cli.EXIT_CLEAN


def test_compare_names_the_divergence_and_the_finding_only_one_run_has(tmp_path, capsys):
    for name in ("dying_relu", "dying_relu_fixed"):
        path = str(tmp_path / f"{name}.bpviz")
        cli.main(["check", str(SAMPLES_DIR / f"{name}.py"), "--steps", "4", "--record", path])
    capsys.readouterr()
    a, b = str(tmp_path / "dying_relu.bpviz"), str(tmp_path / "dying_relu_fixed.bpviz")
    assert cli.main(["compare", a, b, "--json", str(tmp_path / "cmp.json")]) == cli.EXIT_FOUND_ERRORS
    out = capsys.readouterr().out
    # the twins share fc1 (same seed) and differ from fc2's biases on: fc2's forward is the first difference
    assert "diverge at step 0: layer fc2, mean" in out
    assert "relu2: dead_relu (error) from step 2 in A, healthy in B" in out
    result = json.loads((tmp_path / "cmp.json").read_text())
    assert result["divergence"]["layer"] == "fc2" and not result["same"]
    assert cli.main(["compare", a, a]) == cli.EXIT_CLEAN
    assert result["layers_only_in_a"] == result["layers_only_in_b"] == []  # the twins have the same layers


def test_compare_of_two_different_models_says_which_layers_it_could_not_compare(tmp_path, capsys):
    """A 5-layer run compared with a 21-layer one said only where they diverge, as if the rest had been compared."""
    for name in ("dying_relu", "exploding"):
        cli.main(
            ["check", str(SAMPLES_DIR / f"{name}.py"), "--steps", "2", "--record", str(tmp_path / f"{name}.bpviz")]
        )
    capsys.readouterr()
    a, b = (str(tmp_path / f"{name}.bpviz") for name in ("dying_relu", "exploding"))
    assert cli.main(["compare", a, b, "--json", str(tmp_path / "cmp.json")]) == cli.EXIT_FOUND_ERRORS
    result = json.loads((tmp_path / "cmp.json").read_text())
    names_a, names_b = bpviz.open_run(a).layer_names(), bpviz.open_run(b).layer_names()
    assert result["layers_only_in_a"] == [n for n in names_a if n not in names_b]
    assert result["layers_only_in_b"] == [n for n in names_b if n not in names_a] and result["layers_only_in_b"]
    only_a, only_b = result["layers_only_in_a"], result["layers_only_in_b"]
    assert only_a == ["relu1", "relu2", "out"]  # fc1 and fc2 are in both samples
    said = f"3 layers only in A (relu1, relu2, out); {len(only_b)} layers only in B ({', '.join(only_b[:3])}, …)"
    assert f"the runs have different layers (compared by name): {said}" in capsys.readouterr().out


def test_compare_says_a_layer_the_other_run_lacks_is_not_there_rather_than_healthy(tmp_path, capsys):
    a, b = str(tmp_path / "dying_relu.bpviz"), tmp_path / "other.bpviz"
    cli.main(["check", str(SAMPLES_DIR / "dying_relu.py"), "--steps", "4", "--record", a])
    seeded_run(b, steps=4)  # a Sequential: its layers are named 0-4
    capsys.readouterr()
    assert cli.main(["compare", a, str(b)]) == cli.EXIT_FOUND_ERRORS
    out = capsys.readouterr().out
    assert "relu2: dead_relu (error) from step 2 in A, no such layer in B" in out
    assert "healthy in B" not in out
