"""The strip that says what failed in the user's file or model, and where.

It shows `UserCodeError.summary()` (what, file:line, layer, why); "Details"
unfolds the full traceback. The rest of the window stays usable underneath.

The traceback unfolds over the page below, not into the window's layout: the
page is already at its least height on a 1280x800 or 1600x1000 screen, so a
traceback laid out above it made the window taller than the screen (status
bar and docks off the bottom) and Dismiss never gave the height back. Over the
page it takes a bounded height and scrolls, and the window's size never moves.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

from bpviz.engine.user_error import UserCodeError
from bpviz.gui import theme

DETAILS_HEIGHT = 320  # px of traceback at most, fewer when the page below is shorter
DETAILS_SHARE = 0.6  # of the height under the panel: the page's top stays in sight


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
        self.details = QPlainTextEdit()  # over the page, placed by _place_details: outside every layout
        self.details.setObjectName("errorDetails")
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setStyleSheet(theme.ERROR_DETAILS_STYLE)
        self.details.hide()

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.details_button)
        header.addWidget(self.dismiss_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 4, 10, 4)  # the page below is at its least height on a 1600x1000 screen
        layout.addLayout(header)
        layout.addWidget(self.summary)
        self.hide()

    def event(self, event: QEvent) -> bool:
        """Laid out in a window: the traceback becomes a child of the panel's parent, over what lies below it."""
        if event.type() == QEvent.Type.ParentChange:
            self._adopt_details()
        return super().event(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        """The panel or the area under it moved, resized or went: the traceback follows."""
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Move, QEvent.Type.Show, QEvent.Type.Hide):
            self._place_details()
        return super().eventFilter(watched, event)

    def _adopt_details(self) -> None:
        host = self.parentWidget()
        if host is None or self.details.parentWidget() is host:
            return
        self.details.setParent(host)
        host.installEventFilter(self)
        self.installEventFilter(self)
        self._place_details()

    def _place_details(self) -> None:
        host = self.details.parentWidget()
        shown = self.details_button.isChecked() and not self.isHidden() and host is not None and host is not self
        self.details.setVisible(shown)
        if not shown:
            return
        top = self.geometry().bottom() + 1
        height = min(DETAILS_HEIGHT, int(DETAILS_SHARE * (host.height() - top)))
        self.details.setGeometry(self.geometry().left(), top, self.width(), max(height, 0))
        self.details.raise_()

    def show_error(self, error: UserCodeError) -> None:
        """Show `error`: its summary now, its traceback behind Details."""
        self.error = error
        self.title.setText(error.what)
        lines = error.summary().splitlines()[1:]  # the first line is `what`, already the title
        self.summary.setText("\n".join(line.strip() for line in lines))
        self.details.setPlainText(error.details or "(no traceback recorded)")
        self.details_button.setChecked(False)
        self.show()

    def text(self) -> str:
        """Everything the panel currently says, for tests and the clipboard."""
        return self.error.summary() if self.error is not None and not self.isHidden() else ""

    def _toggle_details(self, _on: bool) -> None:
        self._place_details()
