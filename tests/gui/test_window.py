"""The real window, driven the way a person drives it: open, step, run, pause, reset, fail, drop, copy.

Every wait is on a signal or a condition (qtbot.waitSignal / waitUntil); the
settings live in a throwaway ini file per test.
"""

from __future__ import annotations

import csv
import io
import os
import textwrap
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication
from torch import nn

from bpviz.engine.load.experiment import load_experiment
from bpviz.engine.load.samples import list_samples
from bpviz.engine.runs.reader import open_run
from bpviz.engine.session.stepper import Stepper
from bpviz.gui.panels.layer_table import DEAD, NAME
from bpviz.gui.window.dialogs import Dialogs
from bpviz.gui.window.main_window import MainWindow
from bpviz.gui.window.trust import TrustChoice
from tests.gui import window_driver as driver
from tests.gui.window_driver import LOAD_MS, SAMPLES, open_file, run_steps


class FakeDialogs(Dialogs):
    """Canned answers; records what was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.open_answer: Path | None = None
        self.trust_answer = True
        self.shape_answer: tuple[int, ...] | None = (6,)
        self.save_answer: Path | None = None
        self.directory_answer: Path | None = None

    def open_file(self, parent, directory):
        self.asked.append("open")
        return self.open_answer

    def save_file(self, parent, caption, suggested, file_filter):
        self.asked.append("save")
        return self.save_answer

    def choose_directory(self, parent, caption, directory):
        self.asked.append("directory")
        return self.directory_answer

    def confirm_trust(self, parent, path):
        self.asked.append("trust")
        return self.trust_answer

    def confirm_run_code(self, parent, path):  # experiment files are trusted here; tests/gui/test_trust.py asks
        return TrustChoice.FILE

    def ask_input_shape(self, parent, path):
        self.asked.append("shape")
        return self.shape_answer


@pytest.fixture
def ini(tmp_path) -> Path:
    return tmp_path / "settings.ini"


def make_window(qtbot, ini: Path, dialogs: Dialogs | None = None) -> MainWindow:
    return driver.make_window(qtbot, ini, dialogs or FakeDialogs())


@pytest.fixture
def dialogs() -> Dialogs:
    return FakeDialogs()


def table_column(window: MainWindow, column: int) -> dict[str, str]:
    model = window.page.table_model
    return {model.data(model.index(r, NAME)): model.data(model.index(r, column)) for r in range(model.rowCount())}


def headless(path: Path, steps: int):
    stepper = Stepper(load_experiment(path, seed=0))
    try:
        for _ in range(steps):
            record = stepper.step()
        return record, [(f.kind, f.layer, f.severity, f.step) for f in stepper.findings]
    finally:
        stepper.close()


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


RAISES_AT_STEP_3 = """
    import torch
    from torch import nn

    class Flaky(nn.Module):
        # a leaf layer (no child modules) that fails on its fourth call

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(8, 2) * 0.1)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 3:
                raise ValueError("head broke on call %d" % self.calls)
            return x @ self.weight

    def build():
        g = torch.Generator().manual_seed(0)
        data = [(torch.randn(8, 4, generator=g), torch.randint(2, (8,), generator=g)) for _ in range(4)]
        model = nn.Sequential()
        model.add_module("fc", nn.Linear(4, 8))
        model.add_module("act", nn.ReLU())
        model.add_module("head", Flaky())
        return {"model": model, "train_data": data}
"""


# --- the start page -------------------------------------------------------------------------------


def test_start_page_lists_every_sample_with_its_description(window):
    assert window.stack.currentWidget() is window.start_page
    items = [window.start_page.samples.item(i) for i in range(window.start_page.samples.count())]
    assert len(items) == len(SAMPLES) > 0
    for (path, description), item in zip(list_samples(), items):
        assert description in item.text()
        assert Path(item.data(Qt.ItemDataRole.UserRole)) == path
    assert not window.actions_.step.isEnabled()


def test_double_clicking_a_sample_opens_it(qtbot, window):
    item = window.start_page.samples.item(0)
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS) as blocker:
        window.start_page.samples.itemActivated.emit(item)
    assert blocker.args[0].path == list_samples()[0][0]


def test_file_open_uses_the_dialog(qtbot, window):
    window.dialogs.open_answer = SAMPLES["dying_relu"]
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.actions_.open.trigger()
    assert window.dialogs.asked == ["open"]
    assert window.windowTitle().startswith("dying_relu.py")


# --- every sample agrees with a headless run ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_matches_a_headless_run(qtbot, window, name):
    steps = 6
    open_file(qtbot, window, SAMPLES[name])
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()  # one step through the Step action ...
    run_steps(qtbot, window, steps - 1)  # ... the rest through Run N
    record, findings = headless(SAMPLES[name], steps)
    assert window.history.latest.step == record.step == steps - 1
    dead = table_column(window, DEAD)
    assert list(dead) == [layer.name for layer in record.layers]
    for layer in record.layers:
        assert dead[layer.name] == ("–" if layer.dead_units is None else str(layer.dead_units)), layer.name
    shown = [(f.kind, f.layer, f.severity, f.step) for f in window.page.findings_panel.model.findings]
    assert sorted(shown, key=str) == sorted(findings, key=str)
    assert window.status.labels["step"].text() == f"Step {steps - 1}"
    assert window.status.labels["mode"].text() in ("Mode: train", "Mode: eval")


# --- stepping, running, pausing, cancelling, resetting ----------------------------------------------


def test_run_then_pause_leaves_a_usable_window(qtbot, window):
    open_file(qtbot, window, SAMPLES["forgot_eval"])
    with qtbot.waitSignal(window.run_started, timeout=LOAD_MS):
        window.actions_.run.trigger()
    assert not window.actions_.step.isEnabled() and window.actions_.pause.isEnabled()
    qtbot.waitUntil(lambda: len(window.history) >= 3, timeout=LOAD_MS)
    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS) as blocker:
        window.actions_.pause.trigger()
    assert blocker.args == ["stopped"]
    done = len(window.history)
    qtbot.waitUntil(lambda: window.shown_step == done - 1, timeout=LOAD_MS)
    assert window.actions_.step.isEnabled() and not window.actions_.pause.isEnabled()
    with qtbot.waitSignal(window.stepped, timeout=LOAD_MS):
        window.actions_.step.trigger()
    assert len(window.history) == done + 1


def test_cancel_ends_run_n_early_and_hides_the_progress(qtbot, window):
    open_file(qtbot, window, SAMPLES["forgot_eval"])
    window.actions_.steps_box.setValue(100_000)
    window.actions_.run_n.trigger()
    qtbot.waitUntil(
        lambda: window.status.progress.isVisible() and window.status.progress.bar.value() >= 2, timeout=LOAD_MS
    )
    assert window.status.progress.bar.maximum() == 100_000
    with qtbot.waitSignal(window.run_finished, timeout=LOAD_MS):
        window.status.progress.cancel_button.click()
    assert len(window.history) < 100_000
    assert not window.status.progress.isVisible()


def test_reset_rebuilds_the_same_model_with_the_same_seed(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 4)
    first = list(window.history.losses)
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.actions_.reset.trigger()
    assert len(window.history) == 0 and window.page.table_model.rowCount() == 0
    run_steps(qtbot, window, 4)
    assert window.history.losses == first


def test_validate_shows_metrics_and_the_mode_banner(qtbot, window):
    open_file(qtbot, window, SAMPLES["forgot_eval"])
    run_steps(qtbot, window, 3)
    with qtbot.waitSignal(window.validated, timeout=LOAD_MS) as blocker:
        window.actions_.validate.trigger()
    step, metrics = blocker.args
    assert window.history.validation[-1] == (step, metrics)
    qtbot.waitUntil(lambda: window.page.banner.isVisible(), timeout=LOAD_MS)
    assert "train" in window.page.banner.text().lower() or "eval" in window.page.banner.text().lower()


def test_validate_is_offered_only_for_an_experiment_with_validation_data(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])  # no val_data
    run_steps(qtbot, window, 1)
    validate = window.actions_.validate
    assert window.actions_.step.isEnabled() and not validate.isEnabled()
    assert "no validation" in validate.toolTip() and "val_data" in validate.toolTip()
    open_file(qtbot, window, SAMPLES["forgot_eval"])  # returns val_data
    qtbot.waitUntil(validate.isEnabled, timeout=LOAD_MS)
    assert validate.toolTip() == "Run the experiment's validation now"


def test_selecting_a_finding_selects_its_layer_and_explains_it(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 5)
    window.page.select_layer("fc1")
    panel = window.page.findings_panel
    assert panel.select(("dead_relu", "relu2"))
    assert window.page.selected_layer() == "relu2"
    assert "What to try" in panel.explanation.toPlainText()
    assert window.page.histogram_view.isVisible()


def test_the_selected_layer_survives_more_steps(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    window.page.table.sortByColumn(DEAD, Qt.SortOrder.DescendingOrder)
    window.page.select_layer("fc2")
    run_steps(qtbot, window, 3)
    assert window.page.selected_layer() == "fc2"


# --- failures in user code ---------------------------------------------------------------------------


def test_a_broken_file_shows_where_and_the_window_stays_usable(qtbot, window, tmp_path):
    broken = write(
        tmp_path,
        "broken.py",
        """
        import torch

        def build():
            return {"model": torch.nn.Linear(2, 2), "train_data": undefined_name}
    """,
    )
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS) as blocker:
        window.open_path(broken)
    error = blocker.args[0]
    assert window.error_panel.isVisible()
    assert f"{broken}:5" in window.error_panel.summary.text()
    assert "NameError" in window.error_panel.summary.text()
    window.error_panel.details_button.click()
    assert "Traceback" in window.error_panel.details.toPlainText()
    assert error.where and error.where.endswith("broken.py:5")
    assert window.stack.currentWidget() is window.start_page
    open_file(qtbot, window, SAMPLES["dying_relu"])  # still usable
    assert not window.error_panel.isVisible()


def test_a_broken_file_keeps_the_model_already_open(qtbot, window, tmp_path):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    broken = write(tmp_path, "syntax.py", "def build(:\n    pass\n")
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS):
        window.open_path(broken)
    assert "syntax.py:1" in window.error_panel.summary.text()
    assert len(window.history) == 2 and window.page.table_model.rowCount() == 5
    run_steps(qtbot, window, 1)
    assert window.history.latest.step == 2


def test_a_model_that_raises_mid_run_keeps_what_was_recorded(qtbot, window, tmp_path):
    flaky = write(tmp_path, "flaky.py", RAISES_AT_STEP_3)
    open_file(qtbot, window, flaky)
    with qtbot.waitSignal(window.failed, timeout=LOAD_MS) as failed:
        window.run_n(10)
    qtbot.waitUntil(lambda: not window.controller.running, timeout=LOAD_MS)
    error = failed.args[0]
    assert "step 3" in error.what
    assert error.layer == "head"
    assert error.where and error.where.startswith(str(flaky)) and "ValueError: head broke" in error.why
    summary = window.error_panel.summary.text()
    assert "flaky.py:" in summary and "head" in summary
    qtbot.waitUntil(lambda: window.shown_step == 2, timeout=LOAD_MS)
    assert len(window.history) == 3 and window.page.table_model.rowCount() == 3
    assert window.page.selected_layer() == "head"
    assert window.actions_.step.isEnabled() and window.actions_.reset.isEnabled()
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):  # Reset brings it back
        window.actions_.reset.trigger()
    run_steps(qtbot, window, 2)


# --- files: pickled models, drag and drop, recent files ----------------------------------------------


def pickled_model(tmp_path: Path) -> Path:
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)), path)
    return path


def test_a_pickled_model_asks_for_trust_then_for_the_input_shape(qtbot, window, tmp_path):
    path = pickled_model(tmp_path)
    window.dialogs.trust_answer = False
    assert not window.open_path(path)
    assert window.dialogs.asked == ["trust"]
    window.dialogs.trust_answer = True
    open_file(qtbot, window, path)
    assert window.dialogs.asked == ["trust", "trust", "shape"]
    assert window.controller.request.input_shape == (6,) and window.controller.request.trust
    run_steps(qtbot, window, 2)
    assert window.page.table_model.rowCount() == 3


def _drop(window: MainWindow, path: Path, mime: QMimeData) -> tuple[QDragEnterEvent, QDropEvent]:
    """Drag `path` over the window; the caller keeps `mime` alive while the events live."""
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(
        QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, enter)
    drop = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    return enter, drop


def test_dropping_a_file_opens_it(qtbot, window, tmp_path):
    mime = QMimeData()
    enter, drop = _drop(window, SAMPLES["softmax_cross_entropy"], mime)
    assert enter.isAccepted()
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS) as blocker:
        QApplication.sendEvent(window, drop)
    assert blocker.args[0].path == SAMPLES["softmax_cross_entropy"]
    other = tmp_path / "notes.txt"
    other.write_text("")
    other_mime = QMimeData()
    enter, _ = _drop(window, other, other_mime)
    assert not enter.isAccepted()


def test_a_file_of_another_kind_is_refused_at_once_and_takes_no_place_in_recent(qtbot, window, tmp_path):
    """notes.txt started an experiment process, failed there, and pushed a run out of the ten Recent places."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    before = window.settings.recent_files()
    assert not window.open_path(notes)
    assert window.error_panel.isVisible()
    assert window.error_panel.title.text() == "notes.txt is no file bpviz opens"
    assert "a recorded run (.bpviz)" in window.error_panel.text()
    assert window.controller.client.processes() == [] and window.settings.recent_files() == before


def test_recent_files_are_remembered_and_reopen(qtbot, ini, tmp_path):
    first = make_window(qtbot, ini)
    open_file(qtbot, first, SAMPLES["softmax_cross_entropy"])
    open_file(qtbot, first, SAMPLES["forgot_eval"])
    first.close()
    second = make_window(qtbot, ini)
    recent = second.start_page.recent
    assert [recent.item(i).data(Qt.ItemDataRole.UserRole) for i in range(recent.count())] == [
        str(SAMPLES["forgot_eval"].resolve()),
        str(SAMPLES["softmax_cross_entropy"].resolve()),
    ]
    menu = second.actions_.recent_menu
    menu.aboutToShow.emit()
    entries = [a for a in menu.actions() if a.text() == "&2 softmax_cross_entropy.py   (…/sample_models)"]
    assert len(entries) == 1
    with qtbot.waitSignal(second.loaded, timeout=LOAD_MS) as blocker:
        entries[0].trigger()
    assert blocker.args[0].path.name == "softmax_cross_entropy.py"
    second.close()


def test_geometry_and_splitters_persist(qtbot, ini):
    first = make_window(qtbot, ini)
    first.resize(720, 540)  # within the offscreen screen (800x600), which restoreGeometry clamps to
    size = (first.size().width(), first.size().height())
    first.page.main_splitter.setSizes([300, 400])
    sizes = first.page.main_splitter.sizes()
    first.close()
    second = make_window(qtbot, ini)
    assert (second.size().width(), second.size().height()) == size != (1600, 960)
    assert second.page.main_splitter.sizes() == sizes
    second.close()


# --- copying and exporting ---------------------------------------------------------------------------


def test_copy_table_as_csv(qtbot, window):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 4)
    window.actions_.copy_csv.trigger()
    rows = list(csv.reader(io.StringIO(QGuiApplication.clipboard().text())))
    assert rows[0][:2] == ["status", "layer"]
    by_name = {row[1]: row for row in rows[1:]}
    assert set(by_name) == {layer.name for layer in window.history.latest.layers}
    relu2 = window.history.latest.layer("relu2")
    assert by_name["relu2"][DEAD] == str(relu2.dead_units)
    assert by_name["relu2"][0] == "error"


def test_save_table_and_export_plots(qtbot, window, tmp_path):
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 3)
    window.dialogs.save_answer = tmp_path / "layers.csv"
    window.actions_.save_csv.trigger()
    assert (tmp_path / "layers.csv").read_text().startswith("status,layer")
    window.dialogs.directory_answer = tmp_path / "plots"
    (tmp_path / "plots").mkdir()
    written = window.export_plots()
    assert written and all(p.exists() and p.stat().st_size > 0 for p in written)
    assert {p.suffix for p in written} == {".png", ".svg"}


def test_shortcuts(window):
    a = window.actions_
    keys = {name: getattr(a, name).shortcut().toString() for name in ("step", "run", "pause", "reset", "open")}
    assert keys == {"step": "F10", "run": "F5", "pause": "F6", "reset": "Ctrl+R", "open": "Ctrl+O"}


def screenshot_mode(*args: str) -> int:
    """`python -m bpviz … --screenshot`, in its own process: a finished app.exec() leaves this process's
    Qt state such that later windows stop receiving queued signals."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "bpviz", *args], env=env, timeout=300, capture_output=True).returncode


def test_screenshot_mode_runs_n_steps_and_saves_the_window(qtbot, tmp_path):
    from PySide6.QtGui import QImage

    shot = tmp_path / "shot.png"
    assert screenshot_mode(str(SAMPLES["dying_relu"]), "--steps", "5", "--screenshot", str(shot)) == 0
    image = QImage(str(shot))
    assert not image.isNull() and image.width() >= 800


def test_screenshot_mode_exits_2_on_a_broken_file(qtbot, tmp_path):
    broken = write(tmp_path, "broken.py", "def build(:\n")
    shot = tmp_path / "shot.png"
    assert screenshot_mode(str(broken), "--steps", "5", "--screenshot", str(shot)) == 2
    assert shot.exists()  # the window, with the error shown


def test_models_are_built_and_trained_in_the_experiment_process_never_in_the_windows(qtbot, tmp_path, monkeypatch):
    """Loading, stepping and stepping into all run in the experiment process: user code never runs in the window's."""
    here: list[str] = []
    build, step = Stepper.__init__, Stepper.step

    def recording_build(self, *args, **kwargs):
        here.append("build")
        build(self, *args, **kwargs)

    def recording_step(self, *args, **kwargs):
        here.append("step")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Stepper, "__init__", recording_build)
    monkeypatch.setattr(Stepper, "step", recording_step)
    window = driver.make_window(qtbot, tmp_path / "settings.ini")
    open_file(qtbot, window, SAMPLES["dying_relu"])
    run_steps(qtbot, window, 2)
    driver.step_into(qtbot, window)
    assert here == []  # nothing of the kind ran in this process
    (child,) = window.controller.client.processes()
    with open_run(window.controller.run_path) as run:  # the run file the window reads was written by the child
        assert run.meta["writer_pid"] == str(child.pid) != str(os.getpid()) and len(run) == 2


def test_selecting_a_gradient_finding_colours_the_network_by_gradient_norm(qtbot, window):
    open_file(qtbot, window, SAMPLES["vanishing_sigmoid"])
    run_steps(qtbot, window, 3)
    network = window.docks.network
    assert network.metric_box.currentData() == "grad"  # no ReLU-family layer: it opens coloured by gradient
    network.set_metric("dead")
    assert window.page.findings_panel.select(("vanishing_gradient", "layers.0"))
    assert network.metric_box.currentData() == "grad"
    open_file(qtbot, window, SAMPLES["forgot_eval"])
    run_steps(qtbot, window, 2)
    network.set_metric("update")  # a kind with no colouring of its own leaves the user's choice alone
    window.actions_.validate.trigger()
    panel = window.page.findings_panel
    qtbot.waitUntil(lambda: panel.select(("train_mode_in_eval", "bn")), timeout=LOAD_MS)  # once the panel lists it
    assert network.metric_box.currentData() == "update"


def test_a_statistic_bpviz_failed_to_take_is_said_in_the_banner(qtbot, window, tmp_path):
    # bpviz's own gradient statistics break, in the experiment process (where they are taken): the sample, with
    # one of bpviz's functions replaced by the experiment file itself
    path = tmp_path / "broken_statistics.py"
    path.write_text(
        textwrap.dedent(f"""
            import runpy
            from bpviz.engine.observe import deferred


            def broken(*args, **kwargs):
                raise RuntimeError("odd gradient")


            deferred.settle_gradients = broken
            build = runpy.run_path({str(SAMPLES["dying_relu"])!r})["build"]
        """)
    )
    open_file(qtbot, window, path)
    run_steps(qtbot, window, 2)
    assert window.history.latest.unmeasured  # every layer's gradient, once each
    qtbot.waitUntil(lambda: window.page.banner.isVisible(), timeout=LOAD_MS)
    text = window.page.banner.text()
    assert "could not measure" in text and "RuntimeError: odd gradient" in text
    assert "training is unaffected" in text
