"""What every plot view shares: one selected layer, a redraw from History, and the widgets to export.

The window's redraw clock and Edit > Export see plot views only through this
interface (`PlotRegistry`), so a view added here is paced and exported
like the others without any other file knowing it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Protocol

from PySide6 import QtWidgets

from bpviz.engine.record.history import History
from bpviz.engine.record.records import LayerStep, StepRecord
from bpviz.gui.plots.traces import UNDRAWN, find_layer

log = logging.getLogger(__name__)


def show_empty_frame(*plots) -> None:
    """A plain 0..1 frame on plots with nothing to draw, following the data again once it comes.

    An empty plot keeps the ranges of what it last showed: a previous model's
    loss scale or value range would read as this model's.
    """
    for plot in plots:
        plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        plot.enableAutoRange()


class PlotView(QtWidgets.QWidget):
    """A view of one run's History, usually centred on one selected layer.

    Subclasses implement `refresh` (draw what is new since the last call, cheaply:
    it runs inside the window's frame budget) and `export_targets`, and may react
    to a new selection in `_layer_changed`.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._history: History | None = None
        self._selected: str | None = None
        self._hint = -1  # index of the selected layer in the latest record, tried first
        self._drawn_latest: object = UNDRAWN  # what refresh last drew: UNDRAWN redraws even an empty history

    def set_layer(self, name: str | None) -> None:
        """Show layer `name` (None: nothing selected); redraws at once when data is there."""
        if name == self._selected:
            return
        self._selected = name
        self._hint = -1
        self._drawn_latest = UNDRAWN
        self._layer_changed(name)
        if self._history is not None:
            self.refresh(self._history)

    def refresh(self, history: History) -> None:
        """Draw `history`, reading only what is new since the last call."""
        raise NotImplementedError

    def export_targets(self) -> dict[str, QtWidgets.QWidget]:
        """The widgets Edit > Export writes, by a short name (the file name's tail)."""
        return {}

    def _layer_changed(self, name: str | None) -> None:
        """The selection changed (before the redraw): drop per-layer state."""

    def _is_new(self, latest: StepRecord | None) -> bool:
        """Whether `latest` is not what this view last drew; from now on it counts as drawn.

        Views that redraw only on a new record call this first; after a reset or a new
        selection (UNDRAWN) even an empty history is drawn once, as an empty frame.
        """
        if latest is self._drawn_latest:
            return False
        self._drawn_latest = latest
        return True

    def _selected_step(self, latest: StepRecord | None) -> LayerStep | None:
        """The selected layer's entry in `latest`, found by name with the last known index tried first."""
        if latest is None or self._selected is None:
            return None
        layer = find_layer(latest, self._selected, self._hint)
        self._hint = -1 if layer is None else layer.order
        return layer


class Plotted(Protocol):
    """What the registry needs of a view: a PlotView, or a panel that draws plots of its own (the workbench)."""

    def refresh(self, history: History) -> None: ...

    def export_targets(self) -> dict[str, QtWidgets.QWidget]: ...

    def isVisible(self) -> bool: ...


class PlotRegistry:
    """Every plot view of the window by name: what the redraw clock paces and what Edit > Export writes.

    `refresh` is the one guarded, timed way to redraw a view: one broken plot is
    logged and skipped, never stops the table, the other plots or training.
    """

    def __init__(self) -> None:
        self._views: dict[str, Plotted] = {}
        # Seconds each view's latest refreshes took, for the latency benchmark and for profiling by hand.
        self.timings: dict[str, deque[float]] = {}

    def add(self, name: str, view: Plotted) -> Plotted:
        """Register `view` under `name` (unique; the exported files start with it)."""
        if name in self._views:
            raise ValueError(f"a plot view named {name!r} is registered already")
        self._views[name] = view
        self.timings[name] = deque(maxlen=10_000)
        return view

    def refresh(self, name: str, history: History) -> None:
        """Redraw view `name` from `history`, timed; an exception is logged, not raised."""
        started = time.perf_counter()
        try:
            self._views[name].refresh(history)
        except Exception:  # noqa: BLE001 - one broken plot must not stop the table, the others, or training
            log.exception("the %s plot failed to redraw", name)
        self.timings[name].append(time.perf_counter() - started)

    def items(self):
        return self._views.items()

    def __getitem__(self, name: str) -> Plotted:
        return self._views[name]

    def __contains__(self, name: object) -> bool:
        return name in self._views

    def visible(self) -> list[str]:
        """Names of the views a person can see now (hidden ones are redrawn when shown)."""
        return [name for name, view in self._views.items() if view.isVisible()]
