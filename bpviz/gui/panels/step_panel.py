"""The Step panel: where a paused step stands and the live tensor there.

Forward shows the current layer's output, backward the gradient arriving at
it (as a histogram of a sample, with norm/mean/std), the loss phase the loss,
and the update phase ||dW||/||W|| per parameter as bars.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from bpviz.engine.report.percent import percent_text
from bpviz.engine.session.step_gate import PHASES, PhaseEvent
from bpviz.gui import theme
from bpviz.gui.format import number
from bpviz.gui.plots.step_plots import TensorHistogram, UpdateRatioBars

PANEL_WIDTH, MIN_WIDTH = 340, 220  # px: the Step dock's width, and the least it can be made
PHASE_COLOURS = {
    "forward": theme.ACTIVATION,
    "loss": theme.LOSS,
    "backward": theme.GRADIENT,
    "update": theme.VALIDATION,
}
PHASE_TEXT = {
    "forward": "output of {layer}",
    "loss": "the loss",
    "backward": "gradient arriving at {layer}  (∂L/∂out)",
    "update": "optimizer update: ‖ΔW‖ / ‖W‖ per parameter",
}


# What the panel says while no step is paused, by what the window can do now: it never offers a key that is off.
IDLE_TEXT = {
    "ready": "No step is paused.\n\nStep Into (F11) starts a training step and pauses at its first layer. "
    "F11 again goes one layer further, Shift+F11 finishes the phase, F10 finishes the step, F5 continues.",
    "running": "Training is running.\n\nPause (F6) stops it after its step; then Step Into (F11) starts a step "
    "paused at its first layer.",
    "recording": "This is a recording: read-only, nothing trains, so no step can be paused.\n\n"
    "To step into a step, open the experiment file that made it and press F11.",
    "no model": "No model is loaded.\n\nOpen an experiment file; then Step Into (F11) starts a training step "
    "paused at its first layer.",
}


class PhaseStrip(QtWidgets.QWidget):
    """forward › loss › backward › update, the current phase lit."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.labels = {}
        for i, phase in enumerate(PHASES):
            if i:
                arrow = QtWidgets.QLabel("›")
                arrow.setStyleSheet(f"color: {theme.MUTED}; font-size: 12pt;")
                layout.addWidget(arrow)
            label = QtWidgets.QLabel(phase)
            label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            self.labels[phase] = label
            layout.addWidget(label, 1)
        self.set_phase(None)

    def set_phase(self, current: str | None) -> None:
        reached = True
        for phase, label in self.labels.items():
            colour = PHASE_COLOURS[phase]
            if phase == current:
                style = f"background: {colour}; color: {theme.BACKGROUND}; font-weight: 700;"
                reached = False
            elif current is not None and reached:
                style = f"background: {theme.PANEL}; color: {colour}; border: 1px solid {colour};"
            else:
                style = f"background: {theme.PANEL}; color: {theme.MUTED}; border: 1px solid {theme.FRAME};"
            label.setStyleSheet(f"QLabel {{ {style} border-radius: 3px; padding: 3px 6px; }}")


class StepPanel(QtWidgets.QWidget):
    """Shows the latest PhaseEvent; `clear` when no step is paused."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.event: PhaseEvent | None = None
        self.note: str | None = None  # what `clear` was told (a step that finished, or was stopped)
        self.phases = PhaseStrip()
        self.title = QtWidgets.QLabel()
        self.title.setStyleSheet(theme.LABEL_STYLE)
        self.title.setWordWrap(True)
        self.stats = QtWidgets.QLabel()
        self.stats.setStyleSheet(theme.LABEL_STYLE)
        self.stats.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stats.setWordWrap(True)
        for label in (self.title, self.stats):
            # long layer and parameter names wrap instead of widening the dock (whose width is then saved)
            label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)

        self.histogram = TensorHistogram()
        self.ratios = UpdateRatioBars()
        self.plot_widget, self.ratio_widget = self.histogram.widget, self.ratios.widget
        self.loss_label = QtWidgets.QLabel()
        self.loss_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.loss_label.setStyleSheet(f"color: {theme.LOSS}; font-size: 22pt; font-weight: 600;")
        self.idle_label = QtWidgets.QLabel(IDLE_TEXT["ready"])
        self.idle_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.idle_label.setWordWrap(True)
        self.idle_label.setStyleSheet(f"color: {theme.MUTED}; font-size: 10pt;")
        self.stack = QtWidgets.QStackedWidget()
        for widget in (self.idle_label, self.plot_widget, self.loss_label, self.ratio_widget):
            self.stack.addWidget(widget)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(3)
        layout.addWidget(self.phases)
        layout.addWidget(self.title)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.stats)
        self.clear()

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt's name
        """A stable width, whatever is shown: the dock must not grow with each Step Into."""
        return QtCore.QSize(PANEL_WIDTH, super().sizeHint().height())

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt's name
        return QtCore.QSize(MIN_WIDTH, super().minimumSizeHint().height())

    def clear(self, note: str | None = None) -> None:
        """No step is paused (it finished, was stopped, or none began); `note` says how the last one ended."""
        self.event = None
        self.note = note
        self.phases.set_phase(None)
        self.title.setText(theme.rich(note or "Not paused", theme.MUTED))
        self.stats.setText("")
        self.stats.hide()
        self.stack.setCurrentWidget(self.idle_label)

    def set_idle(self, state: str) -> None:
        """What the window can do now while no step is paused: a key of IDLE_TEXT."""
        self.idle_label.setText(IDLE_TEXT[state])

    def show_event(self, event: PhaseEvent) -> None:
        """Show where the step is paused and its live tensor."""
        self.event = event
        self.phases.set_phase(event.phase)
        colour = PHASE_COLOURS[event.phase]
        where = PHASE_TEXT[event.phase].format(layer=event.layer)
        position = f"   layer {event.index + 1}" if event.layer is not None else ""
        self.title.setText(
            theme.rich(f"Step {event.step}", theme.MUTED)
            + theme.rich(f"   {event.phase}", colour, bold=True)
            + theme.rich(position, theme.MUTED)
            + "<br>"
            + theme.rich(where, theme.FOREGROUND, bold=True)
        )
        self.stats.show()
        if event.phase == "loss":
            self.loss_label.setText(f"loss = {event.loss:.5g}" if event.loss is not None else "loss: –")
            self.stack.setCurrentWidget(self.loss_label)
            self.stats.setText(theme.rich("the loss is computed; backward starts at the last layer", theme.MUTED))
        elif event.phase == "update":
            self._show_ratios(event.update_ratios or {})
        else:
            self._show_values(event, colour)

    def _show_values(self, event: PhaseEvent, colour: str) -> None:
        values = event.values if event.values is not None else np.empty(0)
        self.histogram.show(values, colour, "gradient value" if event.phase == "backward" else "activation value")
        self.stack.setCurrentWidget(self.plot_widget)
        nonfinite = int(np.size(values) - np.isfinite(values).sum())
        zero = float(np.mean(values == 0)) if np.size(values) else 0.0
        parts = [("norm", event.norm), ("mean", event.mean), ("std", event.std)]
        text = "   ".join(
            theme.rich(f"{name} ", theme.MUTED) + theme.rich(number(v), colour, bold=True) for name, v in parts
        )
        text += theme.rich(f"   zeros {percent_text(zero, 0)}   ({np.size(values)} values sampled)", theme.MUTED)
        if nonfinite:
            text += theme.rich(f"   {nonfinite} NaN/Inf", theme.BAD, bold=True)
        self.stats.setText(text)

    def _show_ratios(self, ratios: dict[str, float]) -> None:
        typical = self.ratios.show(ratios)
        self.stack.setCurrentWidget(self.ratio_widget)
        self.stats.setText(
            theme.rich("weights changed   median ‖ΔW‖/‖W‖ ", theme.MUTED)
            + theme.rich(number(typical), theme.VALIDATION, bold=True)
            + theme.rich("   (healthy: about 1e-3 to 1e-2)", theme.MUTED)
        )
