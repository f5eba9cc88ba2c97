"""The training loss per step, with validation points, on a linear or log scale."""
from __future__ import annotations

import numpy as np
from PySide6 import QtWidgets

from bpviz.engine.record.history import History
from bpviz.gui import theme
from bpviz.gui.plots.base import PlotView
from bpviz.gui.plots.intervention_marks import InterventionMarks
from bpviz.gui.plots.traces import RollingBuffer


def validation_points(history: History) -> tuple[str | None, np.ndarray, np.ndarray]:
    """(metric name, steps, values) of the validation metric to draw: "loss" when present, else the first."""
    metric = None
    steps, values = [], []
    for step, metrics in history.validation:
        if not metrics:
            continue
        if metric is None:
            metric = "loss" if "loss" in metrics else next(iter(metrics))
        if metric in metrics:
            steps.append(step)
            values.append(float(metrics[metric]))
    return metric, np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)


class LossView(PlotView):
    """Training loss per step and validation markers; losses are read incrementally from History.losses."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.plot_widget = theme.plot_widget(left="loss", bottom="step")
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")  # losses are kept for every step: may be long
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextColor=theme.FOREGROUND,
                                          brush=theme.brush(theme.PANEL, 0.8))
        self.curve = self.plot.plot(pen=theme.pen(theme.LOSS, 1.5), name="training loss")
        self.validation = self.plot.plot(pen=None, symbol="o", symbolSize=8, symbolPen=theme.pen(theme.BACKGROUND, 1),
                                         symbolBrush=theme.brush(theme.VALIDATION), name="validation")
        self.marks = InterventionMarks(self.plot, labels=True)
        self.log_y = QtWidgets.QCheckBox("log scale")
        self.log_y.toggled.connect(self.set_log_y)
        self.summary = theme.header_label()

        header = QtWidgets.QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.summary, 1)
        header.addWidget(self.log_y)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.plot_widget, 1)

        self._steps = RollingBuffer(1)
        self._losses = RollingBuffer(1)
        self._seen = 0  # losses consumed from the history's list
        self._first_step: int | None = None
        self._validation_seen = -1
        self._validation_last: tuple[str, float] | None = None
        self._update_summary(None)

    def set_log_y(self, on: bool) -> None:
        """Switch the y axis between linear and log10."""
        if self.log_y.isChecked() != on:
            self.log_y.setChecked(on)  # re-enters through toggled
            return
        self.plot.setLogMode(x=False, y=on)

    def refresh(self, history: History) -> None:
        """Append the losses recorded since the last refresh; rebuild when the history was replaced or reset."""
        losses, steps = history.losses, history.loss_steps
        first = steps[0] if steps else None
        rebuilt = history is not self._history or len(losses) < self._seen or first != self._first_step
        if rebuilt:
            self._history, self._seen, self._first_step = history, 0, first
            capacity = max(2 * len(losses), 4096)
            self._steps, self._losses = RollingBuffer(capacity), RollingBuffer(capacity)
            self._validation_seen = -1
            self.curve.setData([], [])  # a new model or a reset: none of the old curve stays
        self.marks.update(history)
        changed = rebuilt
        if len(losses) > self._seen:
            new = slice(self._seen, len(losses))
            if len(self._losses) + len(losses) - self._seen > self._losses.capacity:
                self._grow(len(losses))
            self._steps.append(np.asarray(steps[new], dtype=np.float64))
            self._losses.append(np.asarray(losses[new], dtype=np.float64))
            self._seen = len(losses)
            # non-finite losses (and losses <= 0 on a log scale) become gaps rather than wreck the range
            self.curve.setData(self._steps.data, self._losses.data, connect="finite")
            changed = True
        if len(history.validation) != self._validation_seen:
            self._validation_seen = len(history.validation)
            metric, vsteps, vvalues = validation_points(history)
            self.validation.setData(vsteps, vvalues)
            self._validation_last = (metric, vvalues[-1]) if len(vvalues) else None
            label = "validation" if metric in (None, "loss") else f"validation {metric}"
            self.legend.getLabel(self.validation).setText(label, color=theme.FOREGROUND)
            changed = True
        if changed:
            self._update_summary(history)

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        """The loss plot, for PNG/SVG export."""
        return {"loss": self.plot_widget}

    def _grow(self, needed: int) -> None:
        """Losses are kept for every step, so the buffers grow (by doubling) instead of rolling."""
        capacity = max(2 * needed, 2 * self._losses.capacity)
        for attr in ("_steps", "_losses"):
            old = getattr(self, attr)
            grown = RollingBuffer(capacity)
            grown.append(old.data)
            setattr(self, attr, grown)

    def _update_summary(self, history: History | None) -> None:
        if history is None or not history.losses:
            self.summary.setText(theme.rich("loss: no steps yet", theme.MUTED))
            return
        text = (theme.rich("loss ", theme.MUTED) + theme.rich(f"{history.losses[-1]:.4g}", theme.LOSS, bold=True)
                + theme.rich(f"  at step {history.loss_steps[-1]}", theme.MUTED))
        if self._validation_last is not None:
            metric, value = self._validation_last
            text += theme.rich(f"   ·   validation {metric} ", theme.MUTED) + theme.rich(
                f"{value:.4g}", theme.VALIDATION, bold=True)
        self.summary.setText(text)
