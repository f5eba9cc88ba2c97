"""The menus a new user reaches for: Help, Export plots, Load weights, Open Recent."""

from __future__ import annotations

import re
import sqlite3
import xml.etree.ElementTree as ET

import pytest
import torch
from PySide6.QtGui import QIcon, QImage
from PySide6.QtWidgets import QApplication, QLabel, QTextBrowser
from torch import nn

import bpviz
from bpviz.engine.load.experiment import load_experiment
from bpviz.gui import theme
from bpviz.gui.window import help as help_pages
from bpviz.gui.window.dialogs import Dialogs
from bpviz.gui.window.export import EXPORT_WIDTH, TITLE_HEIGHT
from tests.gui.window_driver import LOAD_MS, SAMPLES, make_window, open_file, run_steps, weights


class Answers(Dialogs):
    """Dialogs with canned answers."""

    def __init__(self) -> None:
        self.directory = None
        self.file = None
        self.asked: list[str] = []

    def choose_directory(self, parent, caption, directory):
        self.asked.append("directory")
        return self.directory

    def open_file(self, parent, directory):
        self.asked.append("open")
        return self.file

    def open_weights(self, parent, directory):
        self.asked.append("weights")
        return self.file

    def confirm_weights(self, parent, weights, experiment):
        self.asked.append("load weights?")
        return True

    def confirm_trust(self, parent, path):
        self.asked.append("trust")
        return False

    def ask_input_shape(self, parent, path):
        self.asked.append("shape")
        return None


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path / "settings.ini", Answers())


def test_help_lists_shortcuts_how_to_read_and_the_version(window):
    menus = {a.text(): a.menu() for a in window.menuBar().actions()}
    entries = [a.text() for a in menus["&Help"].actions()]
    assert entries[:2] == ["&Keyboard shortcuts", "&How to read these plots"] and "&About bpviz" in entries
    keys = {command: keys for command, keys, _ in help_pages.shortcuts(window)}
    when = {command: when for command, _, when in help_pages.shortcuts(window)}
    assert when["Back one step"] == when["Live"] == "in an opened recording" and when["Step Over"] == ""
    assert keys["Step Over"] == "F10" and keys["Step Into"] == "F11" and keys["Step Out"] == "Shift+F11"
    assert keys["Run N steps"] == "Ctrl+F5" and keys["Export plots"] == "Ctrl+E"
    assert keys["Back one step"] == ", or Left" and keys["Forward one step"] == ". or Right"  # every key, not the first
    assert keys["First step"] == "Home" and keys["Live"] == "End"
    window.actions_.shortcuts.trigger()
    shown = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.windowTitle().startswith("Keyboard")]
    assert len(shown) == 1 and "Shift+F11" in shown[0].findChild(QTextBrowser).toPlainText()
    assert f"bpviz {bpviz.__version__}" in help_pages.about_html()
    assert "Gradient flow" in help_pages.HOW_TO_READ and "power of ten" in help_pages.HOW_TO_READ


def test_exported_plots_are_fixed_size_titled_figures_with_plain_file_names(qtbot, window, tmp_path):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 3)
    window.page.select_layer("relu2")
    window.dialogs.directory = tmp_path
    written = window.export_plots()
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == len(written) // 2 >= 8
    whole_model = {"loss_step2", "network_step2"}  # of the model, not of a layer: no layer in their names
    assert whole_model <= {png.stem for png in pngs}
    for png in pngs:
        assert " " not in png.name and re.fullmatch(r"[A-Za-z0-9_.-]+", png.name)
        image = QImage(str(png))
        assert image.width() == EXPORT_WIDTH and image.height() >= EXPORT_WIDTH * 0.4 + TITLE_HEIGHT
        title = ET.parse(png.with_suffix(".svg")).getroot().find("{http://www.w3.org/2000/svg}title").text
        assert "step 2" in title and "dying_relu.py" in title
        if png.stem in whole_model:
            assert "relu1" not in title and "relu2" not in title
        else:
            assert png.stem.endswith("_relu2_step2") and "relu2" in title


def test_the_workbench_exports_its_own_layer(qtbot, window, tmp_path):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    window.page.select_layer("relu2")
    bench = window.docks.workbench
    bench.layer_box.setCurrentIndex(bench.layer_box.findData("relu1"))
    assert bench.layer == "relu1" and window.page.selected_layer() == "relu2"
    window.dialogs.directory = tmp_path
    stems = {p.stem for p in window.export_plots() if p.suffix == ".png"}
    assert {"unit_timeline_relu1_step1", "dead_units_and_loss_relu1_step1", "histogram_relu2_step1"} <= stems


# --- weights -------------------------------------------------------------------------------------------


def dying_relu_weights(tmp_path, value: float):
    """A state dict that fits the dying_relu sample, every parameter set to `value`."""
    state = {k: torch.full_like(v, value) for k, v in load_experiment(SAMPLES["dying_relu"]).model.state_dict().items()}
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    return path


def test_a_state_dict_opened_alone_is_data_not_code_and_says_what_to_do(qtbot, window, tmp_path):
    path = dying_relu_weights(tmp_path, 0.25)
    assert window.open_path(path) is False
    assert window.dialogs.asked == []  # no "this runs code" prompt, no input-shape question
    assert window.error_panel.isVisible()
    shown = " ".join(label.text() for label in window.error_panel.findChildren(QLabel))
    assert "holds weights (a state dict), not a model" in shown and "Load weights" in shown


def test_a_state_dict_opened_over_an_experiment_loads_into_it(qtbot, window, tmp_path):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    path = dying_relu_weights(tmp_path, 0.25)
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS) as blocker:
        assert window.open_path(path)
    assert window.dialogs.asked == ["load weights?"]
    assert blocker.args[0].path == SAMPLES["dying_relu"] and blocker.args[0].weights == str(path)
    assert all(bool((t == 0.25).all()) for t in weights(qtbot, window))
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):  # Reset keeps the weights it was loaded with
        window.actions_.reset.trigger()
    assert all(bool((t == 0.25).all()) for t in weights(qtbot, window))


def test_load_weights_that_do_not_fit_names_the_keys_and_keeps_the_model(qtbot, window, tmp_path):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    before = weights(qtbot, window)
    path = tmp_path / "other.pt"
    torch.save(nn.Sequential(nn.Linear(3, 3)).state_dict(), path)
    window.dialogs.file = path
    assert window.actions_.load_weights.isEnabled()
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS) as blocker:
        window.actions_.load_weights.trigger()
    error = blocker.args[0]
    assert "do not fit the model" in error.what
    assert "missing keys: fc1.bias" in error.why and "unexpected keys: 0.bias, 0.weight" in error.why
    assert window.controller.request.weights is None and len(window.history) == 2
    assert all(torch.equal(a, b) for a, b in zip(before, weights(qtbot, window)))
    # Reset still rebuilds the open model: it had become Reload, trying the same weights again and again
    assert window.actions_.reset.text() == "Rese&t"
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS) as loaded:
        window.actions_.reset.trigger()
    assert loaded.args[0].weights is None and len(window.history) == 0


def test_a_run_file_given_as_weights_is_named_as_one_without_torchs_advice_to_unpickle(qtbot, window, tmp_path):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run = tmp_path / "a.bpviz"
    sqlite3.connect(run).execute("CREATE TABLE t(x)").connection.close()
    window.dialogs.file = run
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS) as blocker:
        window.actions_.load_weights.trigger()
    error = blocker.args[0]
    assert error.what == "cannot read weights from a.bpviz"
    assert error.why.startswith("it is a SQLite file (a recorded bpviz run?), not weights: open a run with File > Open")
    assert "weights_only" not in error.why


def test_recent_files_are_numbered_and_tell_two_files_of_the_same_name_apart():
    from pathlib import Path

    from bpviz.gui.window.recent import recent_labels

    paths = [Path("/home/u/a/exp/model.py"), Path("/home/u/b/exp/model.py"), Path("/data/runs/dying_relu.py")]
    assert recent_labels(paths) == ["&1 model.py   (…/a/exp)", "&2 model.py   (…/b/exp)", "&3 dying_relu.py   (…/runs)"]
    many = recent_labels([Path(f"/p/{i}/m&n.py") for i in range(10)])
    assert many[0].startswith("&1 m&&n.py") and many[9].startswith("&0 ")  # accelerators 1-9 then 0; & escaped


def _ink(pixmap) -> float:
    """How much of an icon shows: the sum of its pixels' alpha."""
    image = pixmap.toImage()
    return sum(image.pixelColor(x, y).alphaF() for x in range(image.width()) for y in range(image.height()))


def test_a_disabled_toolbar_icon_is_drawn_faint_not_just_grey(window):
    for action in (window.actions_.validate, window.actions_.reset, window.actions_.step):
        icon = action.icon()
        normal, disabled = icon.pixmap(24, 24, QIcon.Mode.Normal), icon.pixmap(24, 24, QIcon.Mode.Disabled)
        assert _ink(disabled) == pytest.approx(theme.DISABLED_ICON_OPACITY * _ink(normal), rel=0.05), action.text()


def test_plots_exported_from_a_recording_name_it_and_the_run_compared(qtbot, window, tmp_path):
    """Exported from a recording, the titles named no file (they named the experiment file trained, or nothing)."""
    from tests.engine.run_files import seeded_run

    a, b = tmp_path / "a.bpviz", tmp_path / "b.bpviz"
    seeded_run(a, steps=4)
    seeded_run(b, steps=4, lr=0.2)
    assert window.open_path(a)
    qtbot.waitUntil(lambda: window.shown_step == 3)
    window.compare_with(b)
    window.dialogs.directory = tmp_path / "figures"
    window.dialogs.directory.mkdir()
    written = [p for p in window.export_plots() if p.suffix == ".svg"]
    assert written
    for svg in written:
        title = ET.parse(svg).getroot().find("{http://www.w3.org/2000/svg}title").text
        assert title.endswith("step 3   ·   a.bpviz compared with b.bpviz"), title
