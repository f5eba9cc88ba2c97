"""What every plot view shares: one selected layer, a redraw from History, and the widgets to export.

The window's redraw clock and Edit > Export see plot views only through this
interface (`PlotRegistry`), so a view added here is paced, exported and
brought up to date when shown like the others without any other file knowing it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from PySide6 import QtCore, QtWidgets

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

    def export_layer(self) -> str | None:
        """The layer its exported figures show, named in their titles and file names: the selected one, for a
        view of one layer (or of all with the selected one marked); a view of the whole model says None."""
        return self._selected

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

    def export_layer(self) -> str | None: ...

    def isVisible(self) -> bool: ...

    def installEventFilter(self, watcher: QtCore.QObject) -> None: ...


class PlotRegistry(QtCore.QObject):
    """Every plot view of the window by name: what the redraw clock paces and what Edit > Export writes.

    `refresh` is the one guarded, timed way to redraw a view: one broken plot is
    logged and skipped, never stops the table, the other plots or training.

    A redraw draws only the views a person can see; the others are stale until they
    are shown (a plot tab or a dock tab raised, the layout switched, the page shown),
    and the registry draws a stale view from `current()` the moment it is shown. Each
    refresh is announced (`refreshed`), so what is drawn over a view (a compared run)
    is drawn with it, however the view came to be drawn.
    """

    refreshed = QtCore.Signal(str)  # a view's name, once it has drawn

    def __init__(self, current: Callable[[], History]) -> None:
        super().__init__()
        self._current = current
        self._views: dict[str, Plotted] = {}
        self._stale: set[str] = set()
        # Seconds each view's latest refreshes took, for the latency benchmark and for profiling by hand.
        self.timings: dict[str, deque[float]] = {}

    def add(self, name: str, view: Plotted) -> Plotted:
        """Register `view` under `name` (unique; the exported files start with it)."""
        if name in self._views:
            raise ValueError(f"a plot view named {name!r} is registered already")
        self._views[name] = view
        self._stale.add(name)
        self.timings[name] = deque(maxlen=10_000)
        view.installEventFilter(self)
        return view

    def mark_stale(self, names: Iterable[str] | None = None) -> None:
        """What the views (or `names`) show is out of date: each is drawn again when drawn or shown."""
        self._stale.update(self._views if names is None else names)

    def refresh(self, name: str, history: History) -> None:
        """Redraw view `name` from `history`, timed; an exception is logged, not raised."""
        started = time.perf_counter()
        self._stale.discard(name)
        try:
            self._views[name].refresh(history)
        except Exception:  # noqa: BLE001 - one broken plot must not stop the table, the others, or training
            log.exception("the %s plot failed to redraw", name)
        self.timings[name].append(time.perf_counter() - started)
        self.refreshed.emit(name)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 - Qt's name
        """A stale view just shown draws the current state at once, not at the next step or scrub."""
        if event.type() == QtCore.QEvent.Type.Show:
            name = next((n for n, view in self._views.items() if view is watched), None)
            if name in self._stale:
                self.refresh(name, self._current())
        return False

    def items(self):
        return self._views.items()

    def __getitem__(self, name: str) -> Plotted:
        return self._views[name]

    def __contains__(self, name: object) -> bool:
        return name in self._views

    def visible(self) -> list[str]:
        """Names of the views a person can see now (hidden ones are redrawn when shown)."""
        return [name for name, view in self._views.items() if view.isVisible()]
