"""The timeline under the plots: a slider over a recording's steps, the step shown, and "Live" to snap to the end.

It holds no run data: only the list of recorded step numbers (for the
slider's positions) and whether it follows the end. Moving it emits the step
chosen; the window rebuilds its RunView at that step and every view redraws
from it, so the table, plots, network and findings show the run as it stood.
"""

from __future__ import annotations

import bisect

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProxyStyle, QPushButton, QSlider, QStyle, QWidget


class _JumpToClick(QProxyStyle):
    """A click on the slider's groove moves it there: a timeline is scrubbed to where one points, not by pages
    (a click near the start of a long run moved ten steps). The application's style draws everything else."""

    def styleHint(self, hint, option=None, widget=None, returnData=None) -> int:  # noqa: N802 - Qt's name
        if hint == QStyle.StyleHint.SH_Slider_AbsoluteSetButtons:
            return Qt.MouseButton.LeftButton.value
        return super().styleHint(hint, option, widget, returnData)


class Timeline(QWidget):
    """Slider + "Step S of N" + Live; `step_chosen(step)` when the user moves, `-1` when it snaps back to live."""

    step_chosen = Signal(int)  # a recorded step, or -1 for "follow the latest"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("timeline")
        self.steps: list[int] = []
        self.live = True
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("timelineSlider")
        self.slider.setToolTip(
            "Scrub back in time: every view shows the run as it stood at that step  (, and . move one step)"
        )
        self.slider.setPageStep(10)
        style = _JumpToClick()  # no base style given: it takes none over (the application's stays the app's)
        style.setParent(self.slider)
        self.slider.setStyle(style)
        self.slider.valueChanged.connect(self._on_moved)
        self.label = QLabel("Step –")
        self.label.setMinimumWidth(150)
        self.live_button = QPushButton("Live")
        self.live_button.setToolTip("Back to the latest step, and follow new ones  (End)")
        self.live_button.setCheckable(True)
        self.live_button.setChecked(True)
        self.live_button.clicked.connect(lambda _checked=False: self.go_live())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(QLabel("Timeline"))
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        layout.addWidget(self.live_button)

    @property
    def step(self) -> int | None:
        """The step the slider stands on (None: nothing recorded)."""
        return self.steps[self.slider.value()] if self.steps else None

    def set_steps(self, steps: list[int]) -> None:
        """The recorded steps (more arrive while following); a live timeline moves to the new end."""
        self.steps = steps
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(len(steps) - 1, 0))
        if self.live:
            self.slider.setValue(self.slider.maximum())
        self.slider.blockSignals(False)
        self._show_label()

    def move(self, by: int) -> None:
        """One step back (-1) or forward (+1); forward from the last step stays there."""
        if self.steps:
            self.slider.setValue(min(max(self.slider.value() + by, 0), self.slider.maximum()))

    def go_to(self, step: int) -> None:
        """Scrub to the recorded step at or before `step`."""
        self.slider.setValue(max(bisect.bisect_right(self.steps, step) - 1, 0))

    def go_first(self) -> None:
        """Scrub to the first recorded step."""
        if self.steps:
            self.slider.setValue(0)

    def go_live(self) -> None:
        """Snap to the latest step and follow the ones still to come."""
        self.live = True
        self.live_button.setChecked(True)
        self.slider.blockSignals(True)
        self.slider.setValue(self.slider.maximum())
        self.slider.blockSignals(False)
        self._show_label()
        self.step_chosen.emit(-1)

    def _on_moved(self, index: int) -> None:
        self.live = False  # the user chose a step: stay on it while new ones arrive, until Live
        self.live_button.setChecked(self.live)
        self._show_label()
        self.step_chosen.emit(self.steps[index] if self.steps else -1)

    def _show_label(self) -> None:
        if not self.steps:
            self.label.setText("Step –")
            return
        self.label.setText(f"Step {self.step}  ({self.slider.value() + 1} of {len(self.steps)})")
