"""`bpviz check` end to end: exit codes 0/1/2, short errors without tracebacks, the JSON report; GUI dispatch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from bpviz.cli import main
from bpviz.engine.load.samples import SAMPLES_DIR

REPO = Path(__file__).resolve().parents[1]

HEALTHY = """
import torch
from torch import nn

def build():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 6, generator=g)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 2))
    return {"model": model, "train_data": [(x, y)], "val_data": [(x, y)]}
"""

FORWARD_FAILS = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 8)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        return self.head(self.encoder(x))

def build():
    return {"model": Net(), "train_data": [(torch.randn(3, 4), torch.zeros(3, dtype=torch.long))]}
"""

BACKWARD_FAILS = """
import torch
from torch import nn

class Boom(nn.Module):
    def forward(self, x):
        x.register_hook(self.explode)  # on the gradient arriving at the first layer's output
        return x * 1.0

    @staticmethod
    def explode(grad):
        raise RuntimeError("bad gradient")

def build():
    model = nn.Sequential(nn.Linear(4, 8), Boom(), nn.Linear(8, 3))
    return {"model": model, "train_data": [(torch.randn(3, 4), torch.zeros(3, dtype=torch.long))]}
"""

LAYER_KEYS = {
    "name",
    "type",
    "shape",
    "units",
    "dead_units",
    "zero_fraction",
    "mean",
    "std",
    "min",
    "max",
    "saturated_fraction",
    "grad_norm",
    "param_grad_norm",
    "update_ratio",
}
FINDING_KEYS = {"kind", "severity", "layer", "step", "message", "explanation", "remedies"}


def write(tmp_path: Path, source: str, name: str = "exp.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_clean_run_exits_0_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["check", str(write(tmp_path, HEALTHY)), "--steps", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    assert printed.out.startswith("4 training steps\nloss: ")
    assert "validation after step 3: " in printed.out
    assert "\nlayer  type    shape  units" in printed.out
    assert printed.out.endswith("no findings\n")
    report = json.loads(out.read_text())
    assert report["version"] == 1 and report["steps"] == 4
    assert len(report["loss"]) == 4 and all(isinstance(v, float) for v in report["loss"])
    assert [layer["name"] for layer in report["layers"]] == ["0", "1", "2"]
    for layer in report["layers"]:
        assert LAYER_KEYS <= set(layer)
    assert report["findings"] == []
    assert report["validation"][0]["step"] == 3
    assert set(report["validation"][0]["metrics"]) == {"loss", "accuracy"}


def test_error_finding_exits_1_and_lands_in_json(tmp_path, capsys):
    out = tmp_path / "report.json"
    sample = SAMPLES_DIR / "softmax_cross_entropy.py"
    assert main(["check", str(sample), "--steps", "2", "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "  ERROR   softmax_before_cross_entropy at softmax, steps 0–1\n          at step 1: " in printed
    finding = json.loads(out.read_text())["findings"][0]
    assert FINDING_KEYS <= set(finding)
    assert (finding["kind"], finding["severity"], finding["layer"], finding["step"]) == (
        "softmax_before_cross_entropy",
        "error",
        "softmax",
        0,
    )


@pytest.mark.parametrize(
    ("sample", "kind", "layer"),
    [
        ("dying_relu.py", "dead_relu", "relu2"),
        ("vanishing_sigmoid.py", "vanishing_gradient", "layers.0"),
        ("forgot_eval.py", "train_mode_in_eval", "bn"),
        ("softmax_cross_entropy.py", "softmax_before_cross_entropy", "softmax"),
    ],
)
def test_each_broken_sample_shows_its_lesson(tmp_path, sample, kind, layer):
    out = tmp_path / "report.json"
    assert main(["check", str(SAMPLES_DIR / sample), "--json", str(out)]) == 1
    errors = {(f["kind"], f["layer"]) for f in json.loads(out.read_text())["findings"] if f["severity"] == "error"}
    assert (kind, layer) in errors


def test_dying_relu_kills_one_layer_and_spares_the_other(tmp_path):
    out = tmp_path / "report.json"
    main(["check", str(SAMPLES_DIR / "dying_relu.py"), "--json", str(out)])
    layers = {layer["name"]: layer for layer in json.loads(out.read_text())["layers"]}
    assert layers["relu2"]["dead_units"] / layers["relu2"]["units"] > 0.5
    assert layers["relu1"]["dead_units"] / layers["relu1"]["units"] < 0.1


def test_exploding_sample_reports_the_blow_up(tmp_path):
    out = tmp_path / "report.json"
    assert main(["check", str(SAMPLES_DIR / "exploding.py"), "--json", str(out)]) == 1
    kinds = {f["kind"] for f in json.loads(out.read_text())["findings"] if f["severity"] == "error"}
    assert "exploding_gradient" in kinds


def test_healthy_resnet_has_no_error_or_warning_over_50_steps(tmp_path):
    out = tmp_path / "report.json"
    assert main(["check", str(SAMPLES_DIR / "healthy_resnet.py"), "--steps", "50", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [f for f in report["findings"] if f["severity"] != "info"] == []
    assert report["loss"][-1] < report["loss"][0] / 2


def test_syntax_error_exits_2_with_file_and_line_and_no_traceback(tmp_path, capsys):
    path = write(tmp_path, "import torch\n\ndef build(:\n    return {}\n")
    assert main(["check", str(path)]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.splitlines()[:3] == [
        "the experiment file has a syntax error",
        f"  where: {path}:3",
        "  why:   SyntaxError: invalid syntax",
    ]
    assert "Traceback" not in printed.err
    assert "--verbose" in printed.err


def test_verbose_adds_the_full_traceback(tmp_path, capsys):
    path = write(tmp_path, "def build():\n    raise KeyError('weights')\n")
    assert main(["check", str(path), "--verbose"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"build() raised an exception\n  where: {path}:2\n  why:   KeyError: 'weights'\n")
    assert "Traceback (most recent call last)" in err


def test_forward_failure_names_the_step_and_layer(tmp_path, capsys):
    path = write(tmp_path, FORWARD_FAILS)
    assert main(["check", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "the forward pass failed at step 0"
    assert lines[1] == f"  where: {path}:12"
    assert lines[2] == "  layer: head (Linear)"
    assert lines[3].startswith("  why:   RuntimeError: mat1 and mat2 shapes cannot be multiplied")


def test_backward_failure_names_the_layer_the_gradient_had_reached(tmp_path, capsys):
    path = write(tmp_path, BACKWARD_FAILS)
    assert main(["check", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "the backward pass failed at step 0"
    assert lines[1] == f"  where: {path}:12"
    assert lines[2] == "  layer: 0 (Linear)"
    assert lines[3] == "  why:   RuntimeError: bad gradient"


def test_pickled_model_needs_trust(tmp_path, capsys):
    import torch

    torch.save(torch.nn.Linear(4, 3), tmp_path / "net.pt")
    assert main(["check", str(tmp_path / "net.pt"), "--input-shape", "4"]) == 2
    assert capsys.readouterr().err.startswith("refusing to unpickle net.pt without --trust\n")
    assert main(["check", str(tmp_path / "net.pt"), "--trust", "--input-shape", "4", "--steps", "3"]) == 0
    assert capsys.readouterr().out.startswith("3 training steps\n")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--steps", "0"], "expected a whole number of at least 1, got '0'"),
        (["--input-shape", "3,a"], "expected positive sizes separated by commas"),
    ],
)
def test_bad_arguments_exit_2_with_usage(tmp_path, capsys, arguments, message):
    assert main(["check", str(write(tmp_path, HEALTHY)), *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: bpviz check")
    assert message in err


def test_unwritable_json_path_exits_2(tmp_path, capsys):
    assert (
        main(["check", str(write(tmp_path, HEALTHY)), "--steps", "1", "--json", str(tmp_path / "no" / "r.json")]) == 2
    )
    assert capsys.readouterr().err.startswith(f"cannot write the report to {tmp_path / 'no' / 'r.json'}: ")


def run_module(*arguments: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "bpviz", *arguments]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_python_m_bpviz_broken_file_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, "import torch\n\ndef build():\n    return [1, 2]\n")
    result = run_module("check", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "build() returned a list, not a dict",
        f"  where: {path}:3",
        "  why:   return a dict such as {'model': model, 'train_data': batches}",
    ]


def test_check_does_not_import_qt(tmp_path):
    path = write(tmp_path, HEALTHY)
    code = (
        "import sys\nfrom bpviz.cli import main\n"
        f"code = main(['check', {str(path)!r}, '--steps', '2'])\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'bpviz.gui')))\n"
        "print('QT', qt)\nsys.exit(code)\n"
    )
    result = run_module(code=code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "QT []"


def test_without_check_the_arguments_go_to_the_window(monkeypatch):
    seen = []
    fake = types.ModuleType("bpviz.gui.app")
    fake.main = lambda args: seen.append(args) or 7
    monkeypatch.setitem(sys.modules, "bpviz.gui.app", fake)
    assert main(["model.py", "--steps", "5", "--input-shape", "3,32,32", "--trust", "--screenshot", "shot.png"]) == 7
    args = seen[0]
    assert (args.file, args.steps, args.input_shape, args.trust, args.screenshot, args.weights, args.seed) == (
        Path("model.py"),
        5,
        (3, 32, 32),
        True,
        Path("shot.png"),
        None,
        0,
    )
    assert main([]) == 7 and seen[1].file is None and seen[1].steps is None


def test_window_unavailable_is_a_friendly_message(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "bpviz.gui.app", None)  # makes the import fail
    assert main(["model.py"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bpviz: the window cannot start (")
    assert "`bpviz check FILE` works without them." in err


FAILS_AT_STEP_3 = """
import torch
from torch import nn

class Fragile(nn.Module):
    calls = 0

    def forward(self, x):
        Fragile.calls += 1
        if Fragile.calls == 4:
            raise RuntimeError("the fourth batch broke me")
        return x

def build():
    Fragile.calls = 0
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), Fragile())
    return {"model": model, "train_data": [(torch.randn(8, 4, generator=g), torch.zeros(8, dtype=torch.long))]}
"""


def test_a_failure_mid_run_keeps_the_steps_already_recorded(tmp_path, capsys):
    path = write(tmp_path, FAILS_AT_STEP_3)
    out = tmp_path / "report.json"
    assert main(["check", str(path), "--steps", "10", "--json", str(out)]) == 2
    captured = capsys.readouterr()
    report = json.loads(out.read_text())
    assert report["steps"] == 3 and len(report["loss"]) == 3
    assert report["error"] == {
        "what": "the forward pass failed at step 3",
        "where": f"{path}:11",
        "layer": "1",
        "why": "RuntimeError: the fourth batch broke me",
    }
    assert "Linear" in captured.out  # the per-layer table of the steps that ran
    assert captured.err.startswith("the forward pass failed at step 3\n")


def test_version_prints_the_package_version(capsys):
    import bpviz

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bpviz {bpviz.__version__}"


def test_install_desktop_writes_a_valid_entry_with_an_absolute_exec_icon_and_mime_type(tmp_path, monkeypatch, capsys):
    import shutil
    import xml.etree.ElementTree as ET

    import bpviz.gui.desktop_entry as desktop

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert main(["--install-desktop"]) == 0
    entry = (tmp_path / "applications" / "bpviz.desktop").read_text()
    exec_line = next(line for line in entry.splitlines() if line.startswith("Exec="))
    program = exec_line[len("Exec=") :].split(" ")[0].strip('"')
    assert Path(program).is_absolute() and Path(program).exists() and exec_line.endswith(" %f")
    assert "MimeType=application/x-bpviz-run;" in entry
    assert (tmp_path / "icons/hicolor/scalable/apps/bpviz.svg").read_bytes() == desktop.ICON.read_bytes()
    # the icon and the MIME description ship inside the package, not only in a source checkout
    assert desktop.ICON.is_relative_to(Path(desktop.__file__).parents[1])
    mime = ET.parse(tmp_path / "mime/packages/bpviz-run.xml").getroot()
    ns = "{http://www.freedesktop.org/standards/shared-mime-info}"
    kind = mime.find(f"{ns}mime-type")
    assert kind.get("type") == "application/x-bpviz-run" and kind.find(f"{ns}glob").get("pattern") == "*.bpviz"
    assert "bpviz.desktop" in capsys.readouterr().out
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(
            ["desktop-file-validate", str(tmp_path / "applications" / "bpviz.desktop")], capture_output=True, text=True
        )
        assert check.returncode == 0 and check.stdout == "", check.stdout


def test_exec_arguments_with_spaces_are_quoted():
    from bpviz.gui.desktop_entry import _quoted

    assert _quoted("/opt/bpviz/bin/bpviz") == "/opt/bpviz/bin/bpviz"
    assert _quoted("/home/me/my envs/bin/python") == '"/home/me/my envs/bin/python"'
