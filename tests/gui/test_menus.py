"""The menus a new user reaches for: Help, Export plots, Load weights, Open Recent."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QTextBrowser

import bpviz
from bpviz.gui.window import help as help_pages
from bpviz.gui.window.dialogs import Dialogs
from bpviz.gui.window.export import EXPORT_WIDTH, TITLE_HEIGHT
from tests.gui.window_driver import SAMPLES, make_window, open_file, run_steps


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
    keys = dict(help_pages.shortcuts(window))
    assert keys["Step Over"] == "F10" and keys["Step Into"] == "F11" and keys["Step Out"] == "Shift+F11"
    assert keys["Run N steps"] == "Ctrl+F5" and keys["Export plots"] == "Ctrl+E"
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
    for png in pngs:
        assert " " not in png.name and re.fullmatch(r"[A-Za-z0-9_.-]+", png.name)
        assert png.stem.endswith("_relu2_step2")
        image = QImage(str(png))
        assert image.width() == EXPORT_WIDTH and image.height() >= EXPORT_WIDTH * 0.4 + TITLE_HEIGHT
        title = ET.parse(png.with_suffix(".svg")).getroot().find("{http://www.w3.org/2000/svg}title").text
        assert "relu2" in title and "step 2" in title and "dying_relu.py" in title
