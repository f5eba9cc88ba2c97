"""Every modal question the window asks, behind one object tests can replace.

The window never calls QFileDialog/QMessageBox/QInputDialog directly; it asks
its `Dialogs`, so a test passes a subclass with canned answers and no modal
loop ever blocks.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMessageBox, QWidget

from bpviz.engine.load.shapes import parse_shape
from bpviz.gui.window.trust import TrustChoice, ask_to_run

WEIGHTS_FILTER = "State dicts (*.pt *.pth);;All files (*)"
RUNS_FILTER = "Recorded runs (*.bpviz);;All files (*)"
OPEN_FILTER = (
    "Experiments, models and runs (*.py *.pt *.pth *.bpviz);;Experiment files (*.py);;"
    "Saved whole models (*.pt *.pth);;Recorded runs (*.bpviz);;All files (*)"
)


class Dialogs:
    """The real, modal dialogs."""

    def open_file(self, parent: QWidget, directory: str) -> Path | None:
        """Ask for an experiment or model file to open."""
        caption = "Open experiment or model (opening an experiment runs its code)"
        path, _ = QFileDialog.getOpenFileName(parent, caption, directory, OPEN_FILTER)
        return Path(path) if path else None

    def open_run(self, parent: QWidget, caption: str, directory: str) -> Path | None:
        """Ask for a recorded run (File > Compare With...): only run files, since nothing else can be compared."""
        path, _ = QFileDialog.getOpenFileName(parent, caption, directory, RUNS_FILTER)
        return Path(path) if path else None

    def save_file(self, parent: QWidget, caption: str, suggested: str, file_filter: str) -> Path | None:
        """Ask where to save something."""
        path, _ = QFileDialog.getSaveFileName(parent, caption, suggested, file_filter)
        return Path(path) if path else None

    def open_weights(self, parent: QWidget, directory: str) -> Path | None:
        """Ask for a state-dict checkpoint to load into the open experiment."""
        path, _ = QFileDialog.getOpenFileName(parent, "Load weights into the experiment", directory, WEIGHTS_FILTER)
        return Path(path) if path else None

    def confirm_weights(self, parent: QWidget, weights: Path, experiment: Path) -> bool:
        """A state dict was opened while an experiment is open: load it into that experiment?"""
        answer = QMessageBox.question(
            parent,
            "Load weights?",
            f"{weights.name} holds weights (a state dict), not a model.\n\n"
            f"Load them into the open experiment, {experiment.name}? It is rebuilt with these weights.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Yes,
        )
        return answer == QMessageBox.StandardButton.Yes

    def choose_directory(self, parent: QWidget, caption: str, directory: str) -> Path | None:
        """Ask for a folder (plot export)."""
        path = QFileDialog.getExistingDirectory(parent, caption, directory)
        return Path(path) if path else None

    def confirm_trust(self, parent: QWidget, path: Path) -> bool:
        """Loading a whole-module .pt unpickles it, which runs code from the file: only for files the user trusts."""
        box = QMessageBox(parent)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Trust this file?")
        box.setText(f"Loading {path.name} runs code stored in the file.")
        box.setInformativeText(
            "A whole saved model (.pt) is a Python pickle: unpickling it can run any code its author put in it. "
            "Only load files you made yourself or got from someone you trust."
        )
        load = box.addButton("Load and run its code", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is load

    def confirm_run_code(self, parent: QWidget, path: Path) -> TrustChoice | None:
        """Opening an experiment file runs its code: asked before its first run (see trust.py)."""
        return ask_to_run(parent, path)

    def ask_input_shape(self, parent: QWidget, path: Path) -> tuple[int, ...] | None:
        """A saved model does not say what it eats: ask for the shape of one sample (no batch dimension)."""
        text = "3, 32, 32"
        while True:
            text, ok = QInputDialog.getText(
                parent,
                "Input shape",
                f"Shape of one input sample for {path.name}, without the batch dimension\n(e.g. 784, or 3, 32, 32):",
                QLineEdit.EchoMode.Normal,
                text,
            )
            if not ok:
                return None
            shape = parse_shape(text)
            if shape is not None:
                return shape
            QMessageBox.warning(
                parent, "Input shape", f"{text!r} is not a shape: write whole numbers separated by commas."
            )

    def ask_rewind_step(self, parent: QWidget, latest: int) -> int | None:
        """Which step before `latest`, the step trained last, to go back to (the training goes on from the step
        after it). Not `latest` itself: going back to where the training stands would change nothing."""
        value, ok = QInputDialog.getInt(
            parent, "Rewind", f"Go back to the end of step (0 to {latest - 1}):", latest - 1, 0, latest - 1
        )
        return value if ok else None

    def ask_steps(self, parent: QWidget, current: int) -> int | None:
        """How many steps Run N should take."""
        value, ok = QInputDialog.getInt(parent, "Run steps", "Number of training steps:", current, 1, 1_000_000)
        return value if ok else None
