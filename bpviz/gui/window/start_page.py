"""The welcome page: the sample models and what each one shows, Open…, and recent files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from bpviz.gui import theme
from bpviz.gui.window.runs_folder import run_label

PATH_ROLE = Qt.ItemDataRole.UserRole


def _section(title: str) -> QLabel:
    label = QLabel(title)
    label.setStyleSheet("font-size: 13pt; font-weight: 600; margin-top: 10px;")
    return label


def _fit_height(widget: QListWidget, most: int = 10, least: int = 3) -> None:
    """Let a list grow to its rows (up to `most`), so short lists leave no dark empty box, and shrink to
    `least` rows and scroll on a small screen: three full lists must not make the window taller than it."""

    def height(rows: int) -> int:
        return rows * (row + 2 * widget.spacing()) + 2 * widget.frameWidth() + 4

    rows = min(max(widget.count(), 1), most)
    row = widget.sizeHintForRow(0) if widget.count() else 24
    widget.setMaximumHeight(height(rows))
    widget.setMinimumHeight(height(min(rows, least)))


def _fill_paths(
    widget: QListWidget, empty: QLabel, paths: list[Path], label: Callable[[Path], str] | None = None
) -> None:
    """One entry per path (`label(path)`; by default its name, then its folder); the `empty` hint instead when there is
    none."""
    widget.clear()
    for path in paths:
        item = QListWidgetItem(label(path) if label is not None else f"{path.name}  —  {path.parent}")
        item.setData(PATH_ROLE, str(path))
        item.setToolTip(str(path))
        widget.addItem(item)
    _fit_height(widget)
    widget.setVisible(bool(paths))
    empty.setVisible(not paths)


class StartPage(QWidget):
    """Shown until a file is open; double-click (or Enter) on an entry opens it."""

    open_requested = Signal(object)  # Path
    browse_requested = Signal()

    def __init__(self, icon: QIcon | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("startPage")

        logo = QLabel()
        if icon is not None and not icon.isNull():
            logo.setPixmap(icon.pixmap(QSize(64, 64)))
        title = QLabel("bpviz")
        title.setStyleSheet("font-size: 26pt; font-weight: 700;")
        subtitle = QLabel(
            "Watch activations and gradients layer by layer while a PyTorch model trains, and get told what is wrong."
        )
        subtitle.setWordWrap(True)
        subtitle.setStyleSheet(f"color: {theme.SUBTITLE}; font-size: 11pt;")
        heading = QVBoxLayout()
        heading.addWidget(title)
        heading.addWidget(subtitle)
        top = QHBoxLayout()
        top.addWidget(logo, 0, Qt.AlignmentFlag.AlignTop)
        top.addSpacing(12)
        top.addLayout(heading, 1)

        self.open_button = QPushButton("Open experiment or model…")
        self.open_button.setToolTip(
            "An experiment file (.py), a whole saved model (.pt) or a recorded run (.bpviz)   Ctrl+O"
        )
        self.open_button.clicked.connect(self.browse_requested)
        self.open_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        hint = QLabel("…or drop a .py, .pt or .bpviz file anywhere on this window.")
        hint.setStyleSheet(f"color: {theme.HINT};")
        open_row = QHBoxLayout()
        open_row.addWidget(self.open_button)
        open_row.addSpacing(8)
        open_row.addWidget(hint, 1)

        self.samples = self._list()
        self.recent = self._list()
        self.no_recent = QLabel("No recent files yet.")
        self.no_recent.setStyleSheet(f"color: {theme.HINT};")
        self.runs = self._list()
        self.no_runs = QLabel(
            "No recorded runs yet: open a .bpviz file, or record one with bpviz.watch(model, record=...)."
        )
        self.no_runs.setStyleSheet(f"color: {theme.HINT};")

        column = QVBoxLayout()
        column.addLayout(top)
        column.addSpacing(8)
        column.addLayout(open_row)
        column.addWidget(_section("Sample models"))
        sample_hint = QLabel("Each sample shows one way training goes wrong. Double-click to open it.")
        sample_hint.setStyleSheet(f"color: {theme.SUBTITLE};")
        column.addWidget(sample_hint)
        column.addWidget(self.samples)
        column.addWidget(_section("Recent files"))
        column.addWidget(self.recent)
        column.addWidget(self.no_recent)
        column.addWidget(_section("Recent runs"))
        column.addWidget(self.runs)
        column.addWidget(self.no_runs)
        column.addStretch(1)

        card = QFrame()
        card.setObjectName("startCard")
        card.setLayout(column)
        card.setMaximumWidth(860)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(24, 24, 24, 24)
        outer.addStretch(1)
        outer.addWidget(card, 6)
        outer.addStretch(1)

    def _list(self) -> QListWidget:
        widget = QListWidget()
        widget.setAlternatingRowColors(True)
        widget.setSpacing(1)
        widget.itemActivated.connect(self._on_activated)
        widget.setStyleSheet("QListWidget::item { padding: 4px 6px; }")
        return widget

    def set_samples(self, samples: list[tuple[Path, str]]) -> None:
        """One entry per sample: its name and the one line on what it shows."""
        self.samples.clear()
        for path, description in samples:
            item = QListWidgetItem(f"{Path(path).stem.replace('_', ' ')}  —  {description}")
            item.setData(PATH_ROLE, str(path))
            item.setToolTip(str(path))
            self.samples.addItem(item)
        _fit_height(self.samples)

    def set_recent(self, paths: list[Path]) -> None:
        """Recently opened files, newest first."""
        _fill_paths(self.recent, self.no_recent, paths)

    def set_runs(self, paths: list[Path]) -> None:
        """Recorded runs (.bpviz), newest first: double-click opens one read-only, or follows it while it is written."""
        _fill_paths(self.runs, self.no_runs, paths, run_label)

    def _on_activated(self, item: QListWidgetItem) -> None:
        self.open_requested.emit(Path(item.data(PATH_ROLE)))
