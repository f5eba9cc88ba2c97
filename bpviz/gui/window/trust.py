"""Consent before an experiment file runs: opening a `.py` executes it, so the window asks first.

Asked once per file or folder not yet trusted, the way editors ask before trusting a
workspace; the answer is remembered (see trusted_paths.py). bpviz's own samples and a
file named on the command line are trusted by the user's own act and never asked about.
Pickled models (.pt) keep their own prompt on every open (see Dialogs.confirm_trust).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

from bpviz.gui.window.trusted_paths import TrustedPaths


class TrustChoice(Enum):
    FILE = "file"
    FOLDER = "folder"


def ask_to_run(parent: QWidget, path: Path) -> TrustChoice | None:
    """The prompt itself (modal): run this file's code? None when the user declined."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Run this experiment's code?")
    box.setText(f"Opening {path.name} runs the Python code in it.")
    box.setInformativeText(
        "An experiment file is a program: bpviz imports it and calls its build(), which can do anything your "
        f"account can. Only open files you wrote or got from someone you trust.\n\nFolder: {path.parent}"
    )
    choices = {
        box.addButton("Trust this file and open", QMessageBox.ButtonRole.AcceptRole): TrustChoice.FILE,
        box.addButton(
            f"Trust the folder {path.parent.name or path.parent}", QMessageBox.ButtonRole.AcceptRole
        ): TrustChoice.FOLDER,
    }
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return choices.get(box.clickedButton())


class CodeTrust:
    """The window's gate before a `.py` runs: trusted already, or asked now (through its Dialogs)."""

    def __init__(self, trusted: TrustedPaths, dialogs) -> None:
        self.trusted = trusted
        self._dialogs = dialogs

    def allows(self, parent: QWidget, path: Path) -> bool:
        """True when `path` may run: it was trusted, or the user trusts it (or its folder) now."""
        if self.trusted.is_trusted(path):
            return True
        choice = self._dialogs.confirm_run_code(parent, path)
        if choice is TrustChoice.FILE:
            self.trusted.trust_file(path)
        elif choice is TrustChoice.FOLDER:
            self.trusted.trust_folder(path.parent)
        return choice is not None
