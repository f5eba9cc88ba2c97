"""The main window: start page or debugger, the error panel, menus, status bar, and the redraw clock.

Records arrive from the training worker as queued signals and only land in
`History`; a 60 Hz timer redraws when something new arrived, so a burst of
fast steps costs one redraw, never one per step. A redraw is drawn one part
per tick (the table, then each visible plot), so no single pause of the event
loop is longer than the slowest part, and the window stays live.
"""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QEvent, QRect, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QIcon
from PySide6.QtWidgets import QLabel, QMainWindow, QStackedWidget, QVBoxLayout, QWidget

from bpviz.engine.config import Config
from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.record.history import History
from bpviz.engine.record.records import StepRecord
from bpviz.engine.user_error import UserCodeError
from bpviz.gui.window.actions import RunProgress, WindowActions
from bpviz.gui.window.debugger_page import DebuggerPage
from bpviz.gui.window.docks import DebugTools
from bpviz.gui.window.dialogs import Dialogs
from bpviz.gui.window.error_panel import ErrorPanel
from bpviz.gui.window import geometry
from bpviz.gui.window import help as help_pages
from bpviz.gui.window import weights as weights_files
from bpviz.gui.window import layout as window_layout
from bpviz.gui.panels.layer_table import table_csv
from bpviz.gui.window.recent import recent_labels
from bpviz.gui.window.settings import Settings
from bpviz.gui.window.start_page import StartPage
from bpviz.gui.training.step_into import DebugController
from bpviz.gui.training.worker import LoadRequest

REDRAW_MS = 16  # one part per tick: the table and each plot at up to 60 / (1 + plots) Hz
IDLE_PER_BUSY = 2.0  # after a redraw that kept the GUI thread busy B seconds (drawing + painting), wait 2·B before the next
OPENABLE = (".py", ".pt", ".pth")
PICKLED = (".pt", ".pth")


class MainWindow(QMainWindow):
    """One window, one model at a time."""

    # Re-emitted on the GUI thread once the window has taken the worker's answer in; wait on these, not on the
    # worker's own signals (a plain callable connected to those would run on the training thread).
    loaded = Signal(object)  # LoadRequest, after the model is built and the page switched
    load_failed = Signal(object)  # UserCodeError
    stepped = Signal(int)  # a record arrived (its step); drawn at the next redraw
    failed = Signal(object)  # UserCodeError from a step or a validation
    validated = Signal(int, object)  # step, metrics
    run_started = Signal(int)  # total, 0 for "until paused"
    run_finished = Signal(str)  # "done" | "stopped" | "failed"
    redrawn = Signal(int)  # step now shown by the table and the visible plots

    def __init__(self, settings: Settings | None = None, dialogs: Dialogs | None = None,
                 icon: QIcon | None = None, remember_layout: bool = True) -> None:
        super().__init__()
        self.settings = settings if settings is not None else Settings()
        self.dialogs = dialogs if dialogs is not None else Dialogs()
        self.remember_layout = remember_layout
        self.setWindowTitle("bpviz")
        if icon is not None:
            self.setWindowIcon(icon)
        self.setAcceptDrops(True)

        self.history = History(Config().history_steps)
        self.findings: list[Finding] = []
        self.shown_step: int | None = None
        # How long each tick's slice of drawing took, and each whole redraw (all parts); the latency benchmark reads them.
        self.redraw_seconds: deque[float] = deque(maxlen=10_000)
        self.cycle_seconds: deque[float] = deque(maxlen=10_000)
        self._parts: list[str] = []  # parts of the redraw in progress
        self._cycle_step: int | None = None
        self._cycle_cost = 0.0  # seconds spent in this redraw's slices and in Qt's painting
        self._next_cycle_at = 0.0
        self.paint_seconds: deque[float] = deque(maxlen=10_000)
        self._dirty = False
        self._arrivals: deque[float] = deque(maxlen=256)

        self.controller = DebugController(self)
        worker = self.controller.worker
        worker.loaded.connect(self._on_loaded)
        worker.failed.connect(self._on_failed)
        worker.load_failed.connect(self._on_load_failed)
        worker.stepped.connect(self._on_stepped)
        worker.validated.connect(self._on_validated)
        worker.run_started.connect(self._on_run_started)
        worker.progress.connect(self._on_progress)
        worker.run_finished.connect(self._on_run_finished)

        self.start_page = StartPage(icon)
        self.start_page.open_requested.connect(self.open_path)
        self.start_page.browse_requested.connect(self.open_dialog)
        self.page = DebuggerPage()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.page)
        self.error_panel = ErrorPanel()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.error_panel)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.actions_ = WindowActions(self)
        self.actions_.install()
        self.actions_.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.debug_tools = DebugTools(self)
        self._build_status_bar()
        self._load_samples()
        self._refresh_recent()
        self._update_actions()

        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        self.compact_layout = False
        self.screen_area: QRect | None = None  # the area the window keeps within; None: its screen's available area
        available = geometry.available_geometry(self)
        window_layout.arrange(self, window_layout.is_compact(available.size()))
        geometry.place(self, self.settings.load_bytes("geometry") if remember_layout else None, available)
        if remember_layout:
            self._restore_layout()
        self.debug_tools.show_docks(self.stack.currentWidget() is self.page)

    # --- opening files ---
    def open_dialog(self) -> None:
        """File > Open…"""
        path = self.dialogs.open_file(self, self.settings.last_directory())
        if path is not None:
            self.settings.set_last_directory(path.parent)
            self.open_path(path)

    def open_path(self, path: str | Path, *, trust: bool | None = None, input_shape: tuple[int, ...] | None = None,
                  weights: str | None = None, seed: int = 0) -> bool:
        """Load `path` on the worker; a .pt asks first for trust and for an input shape. False when the user declined."""
        path = Path(path)
        if path.suffix.lower() in PICKLED and path.is_file():
            as_weights = weights_files.open_state_dict(self, path)  # data, not code: no trust prompt
            if as_weights is not None:
                return as_weights
            if not trust and not self.dialogs.confirm_trust(self, path):
                return False
            trust = True
            if input_shape is None:
                input_shape = self.dialogs.ask_input_shape(self, path)
                if input_shape is None:
                    return False
        request = LoadRequest(path=path, trust=bool(trust), weights=weights, input_shape=input_shape, seed=seed)
        self.statusBar().showMessage(f"Loading {path.name}…")
        self.controller.load(request)
        self._update_actions()
        return True

    def clear_recent(self) -> None:
        self.settings.clear_recent()
        self._refresh_recent()

    # --- training commands (toolbar, menu, shortcuts) ---
    def step(self) -> None:
        self.controller.step()
        self._update_actions()

    def run(self) -> None:
        self.controller.run(0)
        self._update_actions()

    def run_n(self, steps: int | None = None) -> None:
        """Run N steps: `steps`, or the number in the toolbar's box."""
        self.controller.run(steps if steps is not None else self.actions_.steps_box.value())
        self._update_actions()

    def pause(self) -> None:
        self.controller.stop()

    def validate(self) -> None:
        self.controller.validate()
        self._update_actions()

    def reset(self) -> None:
        """Rebuild the model from its file with the same seed; what was shown is cleared once it is rebuilt."""
        if self.controller.reset():
            self.statusBar().showMessage("Resetting…")
        self._update_actions()

    # --- worker answers ---
    def _on_loaded(self, request: LoadRequest) -> None:
        self.history = History(Config().history_steps)
        self.findings = []
        self.shown_step = None
        self._parts = []
        self._arrivals.clear()
        self.page.clear()
        self.error_panel.hide()
        self.stack.setCurrentWidget(self.page)
        self.setWindowTitle(f"{request.path.name} — bpviz")
        self.settings.add_recent(request.path)
        self._refresh_recent()
        self._update_status(None)
        self.statusBar().showMessage(f"Loaded {request.path} (seed {request.seed}). Press F10 to step, F5 to run.", 8000)
        self._update_actions()
        self.loaded.emit(request)

    def _on_failed(self, error: UserCodeError) -> None:
        self.error_panel.show_error(error)
        if error.layer:
            self.page.select_layer(error.layer)
        self.statusBar().showMessage(error.what, 8000)
        self._update_actions()
        self.failed.emit(error)

    def _on_load_failed(self, error: UserCodeError) -> None:
        self.error_panel.show_error(error)
        self.statusBar().showMessage(error.what, 8000)
        self._update_actions()
        self.load_failed.emit(error)

    def _on_stepped(self, record: StepRecord, findings: list[Finding]) -> None:
        self.history.append(record)
        self.findings = findings
        self._arrivals.append(time.perf_counter())
        self._dirty = True
        if not self.controller.running:
            self._update_actions()
        self.stepped.emit(record.step)

    def _on_validated(self, step: int, metrics: dict, findings: list[Finding]) -> None:
        self.history.add_validation(step, metrics)
        self.findings = findings
        self._dirty = True
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()) or "no validation data in this experiment"
        self.statusBar().showMessage(f"Validation after step {step}: {shown}", 10000)
        self._update_actions()
        self.validated.emit(step, metrics)

    def _on_run_started(self, total: int) -> None:
        self.progress.start(total)
        self._update_actions()
        self.run_started.emit(total)

    def _on_progress(self, done: int, _total: int) -> None:
        self.progress.advance(done)

    def _on_run_finished(self, how: str) -> None:
        self.progress.finish()
        self._arrivals.clear()
        self._dirty = True  # the status bar's steps/s goes back to "–"
        self._update_actions()
        self.run_finished.emit(how)

    # --- drawing ---
    def redraw(self, force: bool = False) -> None:
        """Bring every widget up to the latest record now (all parts); a no-op unless something new arrived."""
        if not (self._dirty or force or self._parts):
            return
        if self._dirty or force or not self._parts:
            self._begin_cycle()
        while self._parts:
            self._draw_next_part()

    def _tick(self) -> None:
        """The redraw clock: one part of the current redraw per tick; a new redraw once something arrived.

        A heavy model's redraw (hundreds of layers) is paced so the GUI thread stays mostly idle:
        input and the window's own events never queue behind drawing.
        """
        if not self._parts and self._dirty and time.perf_counter() >= self._next_cycle_at:
            self._begin_cycle()
        if self._parts:
            self._draw_next_part()

    def _begin_cycle(self) -> None:
        self._dirty = False
        latest = self.history.latest
        self._cycle_step = None if latest is None else latest.step
        self._cycle_cost = 0.0
        self._parts = self.page.begin_cycle(self.history, self.findings) if latest is not None else ["status"]
        if latest is not None:
            self._parts.insert(1, "status")

    def _draw_next_part(self) -> None:
        started = time.perf_counter()
        part = self._parts.pop(0)
        if part == "status":
            self._update_status(self.history.latest)
        else:
            self.page.draw_part(part)
        spent = time.perf_counter() - started
        self.redraw_seconds.append(spent)
        self._cycle_cost += spent
        if not self._parts:
            self.cycle_seconds.append(self._cycle_cost)
            self._next_cycle_at = time.perf_counter() + IDLE_PER_BUSY * self._cycle_cost
            if self._cycle_step is not None:
                self.shown_step = self._cycle_step
                self.redrawn.emit(self._cycle_step)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_labels = {key: QLabel() for key in ("step", "loss", "rate", "mode")}
        for key, label in self.status_labels.items():
            label.setMinimumWidth(90 if key != "loss" else 120)
            label.setStyleSheet("padding: 0 6px;")
            bar.addPermanentWidget(label)
        self.progress = RunProgress(self.pause)
        bar.addPermanentWidget(self.progress)
        self._update_status(None)

    def _update_status(self, record: StepRecord | None) -> None:
        labels = self.status_labels
        # Steps are numbered from 0 everywhere (plots, findings); the tooltip gives the count.
        labels["step"].setText(f"Step {record.step}" if record is not None else "Step –")
        labels["step"].setToolTip(f"{record.step + 1} training steps done" if record is not None else "No step yet")
        loss = record.loss if record is not None else None
        labels["loss"].setText(f"Loss {loss:.4g}" if loss is not None else "Loss –")
        labels["rate"].setText(f"{self.steps_per_second():.1f} steps/s" if self.controller.running else "– steps/s")
        mode = None
        if record is not None and record.forwards:
            mode = "train" if record.forwards[-1].model_training else "eval"
        labels["mode"].setText(f"Mode: {mode or '–'}")
        labels["mode"].setToolTip("Whether the model was in train() or eval() mode during the last training forward")

    def steps_per_second(self) -> float:
        """Steps per second over the last couple of seconds of arrivals."""
        now = time.perf_counter()
        recent = [t for t in self._arrivals if now - t < 2.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def _update_actions(self) -> None:
        c = self.controller
        self.actions_.set_state(has_model=c.has_model, running=c.running, busy=c.busy)
        if hasattr(self, "debug_tools"):
            self.debug_tools.update_actions()

    # --- table export ---
    def copy_table_csv(self) -> str:
        """Edit > Copy table as CSV: the rows as shown (sorted, filtered) go to the clipboard."""
        text = table_csv(self.page.proxy)
        QGuiApplication.clipboard().setText(text)
        self.statusBar().showMessage(f"Copied {self.page.proxy.rowCount()} layers as CSV", 4000)
        return text

    def save_table_csv(self) -> None:
        path = self.dialogs.save_file(self, "Save layer table", "layers.csv", "CSV files (*.csv)")
        if path is not None:
            path.write_text(table_csv(self.page.proxy), encoding="utf-8")
            self.statusBar().showMessage(f"Saved {path}", 4000)

    def export_plots(self) -> list[Path]:
        """Edit > Export plots…: every plot as a 1200 px wide PNG and SVG titled with the plot, layer and step."""
        from bpviz.gui.window.export import export_figure, figure_stem

        folder = self.dialogs.choose_directory(self, "Export plots to folder", self.settings.last_directory())
        if folder is None:
            return []
        written = []
        self.redraw(force=True)
        layer = self.page.selected_layer()
        latest = self.history.latest
        step = None if latest is None else latest.step
        source = self.controller.request.path.name if self.controller.request is not None else ""
        for view_name, view in self.page.views.items():
            view.refresh(self.history)  # a view in a hidden tab is drawn only when shown: bring it up to date
            for target_name, widget in view.export_targets().items():
                title = "   ·   ".join(str(part) for part in (
                    target_name.capitalize(), layer, None if step is None else f"step {step}", source) if part)
                stem = figure_stem(target_name, layer, None if step is None else f"step{step}")
                written += export_figure(widget, folder / stem, title)
        self.statusBar().showMessage(f"Exported {len(written)} files to {folder}", 6000)
        return written

    def about(self) -> None:
        help_pages.show_about(self)

    def event(self, event: QEvent) -> bool:
        """Time Qt's painting passes (one per event-loop turn for the whole window): redraw pacing counts them."""
        if event.type() != QEvent.Type.UpdateRequest:
            return super().event(event)
        started = time.perf_counter()
        handled = super().event(event)
        spent = time.perf_counter() - started
        self.paint_seconds.append(spent)
        self._cycle_cost += spent
        return handled

    # --- drag and drop ---
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_file(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if _dropped_file(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = _dropped_file(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.open_path(path)

    # --- samples, recent files, layout ---
    def _load_samples(self) -> None:
        from bpviz.engine.load.samples import list_samples

        self.start_page.set_samples(list_samples())

    def _refresh_recent(self) -> None:
        self.start_page.set_recent(self.settings.recent_files())

    def _fill_recent_menu(self) -> None:
        menu = self.actions_.recent_menu
        menu.clear()
        recent = self.settings.recent_files()
        for path, label in zip(recent, recent_labels(recent)):
            action = menu.addAction(label)
            action.setToolTip(str(path))
            action.setStatusTip(str(path))
            action.triggered.connect(lambda _checked=False, p=path: self.open_path(p))
        if not recent:
            menu.addAction("(no recent files)").setEnabled(False)
        menu.addSeparator()
        menu.addAction(self.actions_.clear_recent)

    def reset_layout(self, available: QRect | None = None) -> None:
        """View > Reset layout: the arrangement and size that fit the screen (or `available`), docks shown."""
        if available is not None:
            self.screen_area = available
        available = self.screen_area if self.screen_area is not None else geometry.available_geometry(self)
        window_layout.arrange(self, window_layout.is_compact(available.size()))
        if self.isMaximized():
            self.showNormal()
        self.setGeometry(geometry.opening_rect(available))
        geometry.fit(self, available)
        if self.stack.currentWidget() is self.page:
            for dock in self.debug_tools.docks:
                dock.show()

    def showEvent(self, event) -> None:
        """Once shown, make sure window and frame fit the screen it landed on; again when the frame is known."""
        super().showEvent(event)
        self._fit_when_framed = True
        QTimer.singleShot(0, lambda: geometry.fit(self, self.screen_area))

    def moveEvent(self, event) -> None:
        """The window manager's first move after showing tells the frame's size (a title bar may push the bottom off)."""
        super().moveEvent(event)
        if getattr(self, "_fit_when_framed", False) and self.frameGeometry() != self.geometry():
            self._fit_when_framed = False
            geometry.fit(self, self.screen_area)

    def _restore_layout(self) -> None:
        """Dock and splitter positions, when they were saved in the arrangement in use now (roomy or compact)."""
        if self.settings.layout_compact() != self.compact_layout:
            return
        state = self.settings.load_bytes("window_state")
        if state is not None:
            self.restoreState(state)
        for splitter in self.page.splitters():
            blob = self.settings.load_bytes(f"splitter/{splitter.objectName()}")
            if blob is not None:
                splitter.restoreState(blob)

    def save_layout(self) -> None:
        """Remember geometry and splitter positions for the next start."""
        self.settings.save_bytes("geometry", self.saveGeometry())
        self.settings.save_bytes("window_state", self.saveState())
        self.settings.set_layout_compact(self.compact_layout)
        for splitter in self.page.splitters():
            self.settings.save_bytes(f"splitter/{splitter.objectName()}", splitter.saveState())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.remember_layout:
            self.save_layout()
        self.timer.stop()
        self.controller.shutdown()
        super().closeEvent(event)


def _dropped_file(mime) -> Path | None:
    """The first local .py/.pt file among dropped URLs, if any."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in OPENABLE:
                return path
    return None
