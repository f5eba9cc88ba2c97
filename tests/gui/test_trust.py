"""Opening an experiment file runs it, so the window asks first: once per file or folder, remembered.

The real prompt is answered by clicking its buttons, the way a person does; Cancel must load nothing.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from bpviz.gui.window.settings import Settings, ini_settings
from bpviz.gui.window.trusted_paths import TrustedPaths
from tests.gui.window_driver import LOAD_MS, SAMPLES, make_window

EXPERIMENT = """
import torch
from torch import nn

open(__file__ + ".ran", "w").close()  # proof that the file's code ran

def build():
    x = torch.randn(8, 3)
    return {"model": nn.Linear(3, 2), "train_data": [(x, torch.zeros(8, dtype=torch.long))]}
"""


class PromptAnswerer:
    """Clicks `button` on the next message box that opens, and keeps what it said."""

    def __init__(self, button: str) -> None:
        self.button = button
        self.texts: list[str] = []
        QTimer.singleShot(0, self._answer)

    def _answer(self) -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(10, self._answer)
            return
        self.texts.append(f"{box.text()}\n{box.informativeText()}")
        buttons = {button.text().replace("&", ""): button for button in box.buttons()}
        buttons[self.button].click()


def experiment(folder: Path, name: str = "exp.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(EXPERIMENT)
    return path


def open_asked(window, path: Path, button: str) -> tuple[bool, list[str]]:
    answerer = PromptAnswerer(button)
    opened = window.open_path(path)
    return opened, answerer.texts


def test_cancel_on_the_first_open_prompt_runs_nothing(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "settings.ini")
    path = experiment(tmp_path / "downloads")
    opened, texts = open_asked(window, path, "Cancel")
    assert not opened
    assert texts == [
        "Opening exp.py runs the Python code in it.\n"
        "An experiment file is a program: bpviz imports it and calls its build(), which can do anything your "
        f"account can. Only open files you wrote or got from someone you trust.\n\nFolder: {path.parent}"
    ]
    assert window.controller.request is None and window.stack.currentWidget() is window.start_page
    assert not Path(f"{path}.ran").exists()
    assert not TrustedPaths(Settings(ini_settings(tmp_path / "settings.ini"))).is_trusted(path)


def test_trust_loads_the_file_and_is_remembered(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "settings.ini")
    path = experiment(tmp_path / "downloads")
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        opened, texts = open_asked(window, path, "Trust this file and open")
    assert opened and len(texts) == 1
    assert Path(f"{path}.ran").exists()
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):  # the second open asks nothing
        assert window.open_path(path)
    later = TrustedPaths(Settings(ini_settings(tmp_path / "settings.ini")))  # the next session remembers
    assert later.is_trusted(path)
    assert not later.is_trusted(experiment(tmp_path / "downloads", "other.py"))  # only that file


def test_trusting_the_folder_covers_its_other_files(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "settings.ini")
    first = experiment(tmp_path / "work")
    second = experiment(tmp_path / "work" / "sub", "second.py")
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        opened, _ = open_asked(window, first, "Trust the folder work")
    assert opened
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        assert window.open_path(second)  # no prompt: a modal box here would block the test
    assert not TrustedPaths(Settings(ini_settings(tmp_path / "settings.ini"))).is_trusted(tmp_path / "elsewhere.py")


def test_samples_and_command_line_files_are_trusted_without_asking(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "settings.ini")
    assert window.code_trust.trusted.is_trusted(SAMPLES["dying_relu"])
    named = experiment(tmp_path / "cli")
    window.code_trust.trusted.trust_for_session(named)  # what `bpviz FILE` does before opening it
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        assert window.open_path(named)
    assert not TrustedPaths(Settings(ini_settings(tmp_path / "settings.ini"))).is_trusted(named)  # not remembered


def test_a_symlink_does_not_inherit_trust_from_its_own_folder(tmp_path):
    trusted = TrustedPaths(Settings(ini_settings(tmp_path / "settings.ini")))
    outside = experiment(tmp_path / "untrusted")
    (tmp_path / "trusted").mkdir()
    trusted.trust_folder(tmp_path / "trusted")
    link = tmp_path / "trusted" / "link.py"
    link.symlink_to(outside)
    assert not trusted.is_trusted(link)
    assert trusted.is_trusted(tmp_path / "trusted" / "real.py")
