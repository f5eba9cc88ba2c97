"""Dead ReLU units: how many over time, and which ones are silent now."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from bpviz.engine.diagnosis.dead_relu import inactive_not_dead
from bpviz.engine.record.history import History
from bpviz.engine.record.records import LayerStep, StepRecord
from bpviz.engine.report.percent import percent_text
from bpviz.gui import theme
from bpviz.gui.plots.base import PlotView, show_empty_frame
from bpviz.gui.plots.intervention_marks import InterventionMarks
from bpviz.gui.plots.reference_curves import ReferenceCurves
from bpviz.gui.plots.traces import LayerTrace, reads
from bpviz.gui.plots.unit_timeline import UnitTimeline

REFERENCE_LAYERS = 12  # faint dead-count curves of other ReLU layers: at most this many, spread in depth
ACTIVITY_STEPS = 500  # the unit-activity heatmap shows at most this many recent steps (units × steps grows fast)


@reads("dead_units")
def _dead_units(layer: LayerStep) -> float | None:
    return layer.dead_units


@reads("unit_activity")
def _activity(layer: LayerStep) -> np.ndarray | None:
    return layer.unit_activity


class DeadUnitsView(PlotView):
    """Dead-unit count over time (selected layer bold, other ReLU layers faint) and a units × steps activity map."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(theme.VIEW_STYLE)
        self.header = theme.header_label()

        self.count_widget = theme.plot_widget(left="dead units", bottom="step")
        self.count_plot = self.count_widget.getPlotItem()
        self.count_plot.setClipToView(True)
        self.count_plot.setDownsampling(auto=True, mode="peak")
        self.references = ReferenceCurves(self.count_plot, _dead_units, REFERENCE_LAYERS, alpha=0.45)
        self.selected_curve = self.count_plot.plot(pen=theme.pen(theme.BAD, 2.2))
        self.selected_curve.setZValue(10)
        self.marks = InterventionMarks(self.count_plot)

        self.activity = UnitTimeline("unit", symbol="t3", size=10, pen=None, brush=theme.brush(theme.BAD))
        self.activity_widget, self.activity_plot = self.activity.widget, self.activity.plot
        self.activity_image, self.dead_markers = self.activity.image, self.activity.markers
        self.activity_widget.setToolTip(
            "Each unit's share of positions where it fired, per step (dark = silent); "
            "◀ marks the units dead at the latest step"
        )
        self.note = QtWidgets.QLabel()
        self.note.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.note.setWordWrap(True)
        self.note.setStyleSheet(f"color: {theme.MUTED}; background: {theme.BACKGROUND}; font-size: 11pt;")
        self.activity_stack = QtWidgets.QStackedWidget()
        self.activity_stack.addWidget(self.activity_widget)
        self.activity_stack.addWidget(self.note)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(self.count_widget, 1)
        layout.addWidget(self.activity_stack, 1)

        self._count_trace: LayerTrace | None = None
        self._activity_trace: LayerTrace | None = None
        self._show_note("Select a ReLU-family layer to see its dead units.")
        self._set_header(None, None)

    # --- PlotView -------------------------------------------------------------------------------------

    def _layer_changed(self, name: str | None) -> None:
        """Show layer `name`'s dead units (a note for layers that are not ReLU-family)."""
        self._count_trace = None if name is None else LayerTrace(name, _dead_units)
        self._activity_trace = None if name is None else LayerTrace(name, _activity, limit=ACTIVITY_STEPS)
        self.selected_curve.setData([], [])

    def refresh(self, history: History) -> None:
        """Redraw from `history`, reading only records newer than the last drawn."""
        self._history = history
        self.marks.update(history)
        latest = history.latest
        if not self._is_new(latest):
            return
        layer = self._selected_step(latest)
        if latest is None:
            show_empty_frame(self.count_plot)
        else:
            ordered = sorted(latest.layers, key=lambda layer: layer.order)
            self.references.set_layers([layer.name for layer in ordered if layer.units is not None])
        self.references.update(history)
        if self._count_trace is not None and self._count_trace.update(history):
            self.selected_curve.setData(self._count_trace.steps, self._count_trace.values)
        self._draw_activity(history, layer)
        self._set_header(latest, layer)

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        """The dead-count plot and the activity map, for PNG/SVG export."""
        return {"dead units over time": self.count_widget, "unit activity": self.activity_widget}

    # --- drawing --------------------------------------------------------------------------------------

    def _draw_activity(self, history: History, layer: LayerStep | None) -> None:
        if self._selected is None:
            self._show_note("Select a ReLU-family layer to see its dead units.")
            return
        if layer is not None and layer.units is None:
            family = f" ({layer.family})" if layer.family else ""
            self._show_note(
                f"{self._selected} is not a ReLU-family layer{family}:\ndead units apply to ReLU-family layers only."
            )
            return
        trace = self._activity_trace
        if trace is None or not trace.update(history):
            return
        if len(trace) == 0:
            self._show_note(f"No unit activity recorded for {self._selected} yet.")
            return
        self.activity_stack.setCurrentWidget(self.activity_widget)
        steps, activity = trace.steps, trace.values
        self.activity.show(steps, activity)
        units = activity.shape[1]
        dead = layer.dead_unit_ids if layer is not None and layer.dead_unit_ids is not None else np.empty(0)
        self.activity.mark(np.full(len(dead), steps[-1] + 1.2), dead)
        self.activity_plot.setXRange(steps[0] - 0.5, steps[-1] + 2.0, padding=0)
        self.activity_plot.setYRange(-0.5, units - 0.5, padding=0.02)

    def _show_note(self, text: str) -> None:
        self.note.setText(text)
        self.activity_stack.setCurrentWidget(self.note)

    def _set_header(self, latest: StepRecord | None, layer: LayerStep | None) -> None:
        if self._selected is None:
            self.header.setText(theme.rich("dead units: select a layer", theme.MUTED))
            return
        name = theme.rich(self._selected, theme.SELECTED, bold=True)
        if layer is None or layer.units is None or layer.dead_units is None:
            suffix = "   no steps yet" if latest is None else ""
            self.header.set_parts([name, theme.rich(suffix, theme.MUTED)])
            return
        share = layer.dead_units / layer.units if layer.units else 0.0
        inactive = inactive_not_dead(layer)  # a LeakyReLU/GELU swapped in: silent units still get a gradient
        colour = theme.LOSS if not layer.dead_units else theme.MUTED if inactive else theme.BAD
        word = f"inactive, not dead ({layer.type} passes them a gradient)" if inactive else "dead"
        self.header.set_parts(  # the count right after the layer: a narrow view keeps the first parts whole
            [
                name + "   ",
                theme.rich(
                    f"{layer.dead_units} of {layer.units} units {word} ({percent_text(share)})", colour, bold=True
                ),
                theme.rich(f"   step {latest.step}", theme.MUTED),
                theme.rich("   ·   ◀ = dead now", theme.MUTED),
            ]
        )
