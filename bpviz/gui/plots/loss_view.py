"""The training loss per step, with validation points, on a linear or log scale."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from bpviz.engine.record.history import History
from bpviz.gui import theme
from bpviz.gui.plots.base import PlotView, show_empty_frame
from bpviz.gui.plots.intervention_marks import InterventionMarks
from bpviz.gui.plots.traces import RollingBuffer


def validation_series(history: History) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each validation metric's (steps, values), in the order the metrics first appeared."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for step, metrics in history.validation:
        for name, value in metrics.items():
            steps, values = series.setdefault(name, ([], []))
            steps.append(step)
            values.append(float(value))
    return {name: (np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64)) for name, (s, v) in series.items()}


def is_loss(metric: str) -> bool:
    """Losses share the loss axis; any other metric (accuracy, F1, ...) is on another scale and gets its own."""
    return "loss" in metric.lower()


class LossView(PlotView):
    """Training loss per step and validation markers; losses are read incrementally from History.losses."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.plot_widget = theme.plot_widget(left="loss", bottom="step")
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")  # losses are kept for every step: may be long
        # no legend inside the plot, where it covers the newest points: the header names the marks
        self.curve = self.plot.plot(
            pen=theme.pen(theme.LOSS, 1.5), symbolSize=7, symbolPen=None, symbolBrush=theme.brush(theme.LOSS)
        )
        self.validation = self.plot.plot(
            pen=None,
            symbol="o",
            symbolSize=8,
            symbolPen=theme.pen(theme.BACKGROUND, 1),
            symbolBrush=theme.brush(theme.VALIDATION),
        )
        # validation metrics other than a loss (accuracy) on their own axis, on the right
        self.metric_view = pg.ViewBox()
        self.metric_view.setXLink(self.plot)
        self.plot.scene().addItem(self.metric_view)
        right = self.plot.getAxis("right")
        right.linkToView(self.metric_view)
        theme.style_axis(right)
        self.metric_points = pg.PlotDataItem(
            pen=None,
            symbol="d",
            symbolSize=9,
            symbolPen=theme.pen(theme.BACKGROUND, 1),
            symbolBrush=theme.brush(theme.METRIC),
        )
        self.metric_view.addItem(self.metric_points)
        self.metric_name: str | None = None
        self.plot.getViewBox().sigResized.connect(self._fit_metric_view)
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
        self._validation_last: dict[str, float] = {}
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
            self._validation_last = {}
            self.curve.setData([], [])  # a new model or a reset: none of the old curve stays
            self.curve.setSymbol(None)
            if not losses:
                show_empty_frame(self.plot)
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
            # a line through one point draws nothing: the first step's loss is a dot until the second joins it
            self.curve.setSymbol("o" if len(self._losses) == 1 else None)
            changed = True
        if len(history.validation) != self._validation_seen:
            self._validation_seen = len(history.validation)
            self._draw_validation(validation_series(history))
            changed = True
        if changed:
            self._update_summary(history)

    def _draw_validation(self, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """A validation loss beside the training loss; the first other metric on the right axis."""
        losses = [name for name in series if is_loss(name)]
        others = [name for name in series if not is_loss(name)]
        empty = (np.empty(0), np.empty(0))
        self.validation.setData(*(series["loss"] if "loss" in series else series[losses[0]] if losses else empty))
        self.metric_name = others[0] if others else None
        self.metric_points.setData(*(series[self.metric_name] if self.metric_name else empty))
        self.plot.showAxis("right", self.metric_name is not None)
        if self.metric_name is not None:
            self.plot.setLabel("right", f"validation {self.metric_name}", color=theme.METRIC)
            self._fit_metric_view()
        self._validation_last = {name: float(values[-1]) for name, (_, values) in series.items() if len(values)}

    def _fit_metric_view(self) -> None:
        self.metric_view.setGeometry(self.plot.getViewBox().sceneBoundingRect())
        self.metric_view.linkedViewChanged(self.plot.getViewBox(), self.metric_view.XAxis)

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        """The loss plot, for PNG/SVG export."""
        return {"loss": self.plot_widget}

    def export_layer(self) -> None:
        """The loss is the model's: no layer in its figure's name."""
        return None

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
        parts = [
            theme.rich("━ training loss ", theme.LOSS) + theme.rich(f"{history.losses[-1]:.4g}", theme.LOSS, bold=True),
            theme.rich(f"  at step {history.loss_steps[-1]}", theme.MUTED),
        ]
        for metric, value in self._validation_last.items():
            if metric == self.metric_name:
                mark, colour, where = "◆", theme.METRIC, " (right axis)"
            elif is_loss(metric):
                mark, colour, where = "●", theme.VALIDATION, ""
            else:
                mark, colour, where = "", theme.MUTED, ""
            parts.append(
                theme.rich(f"   ·   {mark} validation {metric} ", colour)
                + theme.rich(f"{value:.4g}", colour, bold=True)
                + theme.rich(where, theme.MUTED)
            )
        self.summary.set_parts(parts)
