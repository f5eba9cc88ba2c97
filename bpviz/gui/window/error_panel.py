"""The strip that says what failed in the user's file or model, and where.

It shows `UserCodeError.summary()` (what, file:line, layer, why); "Details"
unfolds the full traceback. The rest of the window stays usable underneath.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

from bpviz.engine.user_error import UserCodeError
from bpviz.gui import theme


class ErrorPanel(QFrame):
    """Hidden until `show_error`; Dismiss hides it again."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("errorPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(theme.ERROR_PANEL_STYLE)
        self.error: UserCodeError | None = None

        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QLabel()
        self.summary.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        self.details_button = QPushButton("Details")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(self._toggle_details)
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.clicked.connect(self.hide)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setMinimumHeight(140)
        self.details.hide()

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.details_button)
        header.addWidget(self.dismiss_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 8)
        layout.addLayout(header)
        layout.addWidget(self.summary)
        layout.addWidget(self.details)
        self.hide()

    def show_error(self, error: UserCodeError) -> None:
        """Show `error`: its summary now, its traceback behind Details."""
        self.error = error
        self.title.setText(error.what)
        lines = error.summary().splitlines()[1:]  # the first line is `what`, already the title
        self.summary.setText("\n".join(line.strip() for line in lines))
        self.details.setPlainText(error.details or "(no traceback recorded)")
        self.details_button.setChecked(False)
        self.details.hide()
        self.show()

    def text(self) -> str:
        """Everything the panel currently says, for tests and the clipboard."""
        return self.error.summary() if self.error is not None and not self.isHidden() else ""

    def _toggle_details(self, on: bool) -> None:
        self.details.setVisible(on)
