"""The main window: start page or debugger, the error panel, menus, status bar; composition and opening files.

The window views one run, always read from a run file: the one its
experiment process records (the controller's `RunView`), or a recording's
(a run file opened read-only or followed while another process writes it),
which the timeline scrubs. The window reacts to the
controller's signals (all emitted on the GUI thread) and redraws through
the RedrawClock; it never writes run state itself.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QEvent, QRect, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QIcon
from PySide6.QtWidgets import QMainWindow, QStackedWidget, QVBoxLayout, QWidget

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.load.checkpoint import PICKLE_SUFFIXES
from bpviz.engine.load.samples import SAMPLES_DIR
from bpviz.engine.observe.catalog import layers_inside
from bpviz.engine.record.history import History
from bpviz.engine.runs.compare import layer_difference
from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.reader import Run
from bpviz.engine.runs.save_copy import save_copy
from bpviz.engine.session.events import RunView
from bpviz.engine.session.protocol import LoadRequest
from bpviz.engine.user_error import UserCodeError
from bpviz.gui.gc_on_gui_thread import collect_on_gui_thread
from bpviz.gui.panels.layer_table import table_csv
from bpviz.gui.plots.base import PlotRegistry
from bpviz.gui.plots.comparison import Comparison
from bpviz.gui.training.controller import TrainingController
from bpviz.gui.window import geometry
from bpviz.gui.window import help as help_pages
from bpviz.gui.window import layout as window_layout
from bpviz.gui.window import weights as weights_files
from bpviz.gui.window.actions import WindowActions
from bpviz.gui.window.debugger_page import DebuggerPage
from bpviz.gui.window.dialogs import Dialogs
from bpviz.gui.window.docks import DebugDocks
from bpviz.gui.window.error_panel import ErrorPanel
from bpviz.gui.window.loading_panel import LoadingPanel
from bpviz.gui.window.rank_sets import RankSets
from bpviz.gui.window.recent import recent_labels
from bpviz.gui.window.recording import Recording
from bpviz.gui.window.redraw import RedrawClock
from bpviz.gui.window.runs_folder import newest_runs, runs_folder
from bpviz.gui.window.settings import Settings
from bpviz.gui.window.start_page import StartPage
from bpviz.gui.window.status_bar import MessageBar, StatusBar
from bpviz.gui.window.timeline import Timeline
from bpviz.gui.window.trust import CodeTrust
from bpviz.gui.window.trusted_paths import TrustedPaths

PICKLED = PICKLE_SUFFIXES
RUN_SUFFIX = ".bpviz"
OPENABLE = (".py", *PICKLE_SUFFIXES, RUN_SUFFIX)


STEPPING_INTO = "Stepping into the step…"


class MainWindow(QMainWindow):
    """One window, one model at a time."""

    # Emitted once the window has taken the controller's answer in (tests and screenshot mode wait on these).
    loaded = Signal(object)  # LoadRequest, after the model is built and the page switched
    load_failed = Signal(object)  # UserCodeError
    stepped = Signal(int)  # a record arrived (its step); drawn at the next redraw
    failed = Signal(object)  # UserCodeError from a step or a validation
    validated = Signal(int, object)  # step, metrics
    run_started = Signal(int)  # total, 0 for "until paused"
    run_finished = Signal(str)  # "done" | "stopped" | "failed"
    redrawn = Signal(int)  # step now shown by the table and the visible plots (the clock's, forwarded)

    def __init__(
        self,
        settings: Settings | None = None,
        dialogs: Dialogs | None = None,
        icon: QIcon | None = None,
        remember_layout: bool = True,
    ) -> None:
        super().__init__()
        collect_on_gui_thread()  # before any reader thread: one collecting Qt objects froze the window
        self.settings = settings if settings is not None else Settings()
        self.dialogs = dialogs if dialogs is not None else Dialogs()
        self.code_trust = CodeTrust(TrustedPaths(self.settings, always=[SAMPLES_DIR]), self.dialogs)
        self.remember_layout = remember_layout
        self.setWindowTitle("bpviz")
        if icon is not None:
            self.setWindowIcon(icon)
        self.setAcceptDrops(True)

        self.controller = TrainingController(self)
        self._step_error_shown = False  # the error panel shows a failed step: the next recorded step takes it down
        # the status message that is old news once a step is recorded (how to step, stepping into, a rewind)
        self._until_stepped = ""

        self.start_page = StartPage(icon)
        self.start_page.open_requested.connect(self.open_path)
        self.start_page.browse_requested.connect(self.open_dialog)
        self.plots = PlotRegistry(lambda: self.viewed.history)
        self.page = DebuggerPage(self.plots)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.page)
        self.error_panel = ErrorPanel()
        self.timeline = Timeline()
        self.timeline.hide()
        self.recording: Recording | None = None
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.error_panel)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.timeline)
        self.setCentralWidget(central)

        self.actions_ = WindowActions(self)
        self.actions_.install()
        self.loading_panel = LoadingPanel(self.actions_.stop)
        layout.insertWidget(0, self.loading_panel)
        self.actions_.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.setStatusBar(MessageBar())
        self.status = StatusBar(self.statusBar(), running=self._steps_coming, cancel=self.pause)
        self._connect_controller()  # before the docks: the window takes each answer in first
        self.docks = DebugDocks(
            self,
            self.statusBar(),
            self.controller,
            self.page,
            self.plots,
            self.settings,
            self.actions_.panels_menu,
            lambda: self.viewed,
        )
        self.docks.state_changed.connect(self.update_actions)
        self.docks.continue_requested.connect(self.run_n)
        self.stack.currentChanged.connect(lambda _i: self.docks.show_docks(self.stack.currentWidget() is self.page))
        self.clock = RedrawClock(self, lambda: self.viewed, self.page, self.plots, self.status.show)
        self.controller.between_redraws, self.controller.flush_news = self.clock.between_redraws, self.clock.flush
        self.clock.redrawn.connect(self.docks.on_redrawn)
        self.clock.redrawn.connect(self.redrawn)
        self.comparison = Comparison(self.page.loss_view, self.page.gradient_flow_view, self.page.histogram_view)
        self.plots.refreshed.connect(self._draw_comparison)  # drawn with its view, however that came to be drawn
        self._load_samples()
        self._refresh_recent()
        self.update_actions()

        self.compact_layout = False
        self.screen_area: QRect | None = None  # the area the window keeps within; None: its screen's available area
        available = geometry.available_geometry(self)
        window_layout.arrange(self, window_layout.is_compact(available.size()))
        geometry.place(self, self.settings.load_bytes("geometry") if remember_layout else None, available)
        if remember_layout:
            self._restore_layout()
        self.docks.show_docks(self.stack.currentWidget() is self.page)
        self.rank_sets = RankSets(self)  # after the saved layout: its dock shows only with a set of rank files
        self.clock.redrawn.connect(self.rank_sets.on_redrawn)

    def _connect_controller(self) -> None:
        c = self.controller
        c.loaded.connect(self._on_loaded)
        c.failed.connect(self._on_failed)
        c.load_failed.connect(self._on_load_failed)
        c.stepped.connect(self._on_stepped)
        c.validated.connect(self._on_validated)
        c.remedy_applied.connect(self._on_remedy_applied)
        c.rewound.connect(self._on_rewound)
        c.run_started.connect(self._on_run_started)
        c.progress.connect(lambda done, _total: self.status.progress.advance(done))
        c.run_finished.connect(self._on_run_finished)
        for answer in (c.step_aborted, c.paused, c.remedy_failed):
            answer.connect(self.update_actions)

    # --- what the window shows (the recording's or the controller's RunView; read only) ---
    @property
    def viewed(self) -> RunView:
        """The run every view draws: the open recording at the timeline's step, else the one being trained."""
        return self.recording.view if self.recording is not None else self.controller.view

    @property
    def history(self) -> History:
        return self.viewed.history

    @property
    def findings(self) -> list[Finding]:
        return self.viewed.findings

    @property
    def shown_step(self) -> int | None:
        """The step the table and the visible plots show now."""
        return self.clock.shown_step

    def redraw(self, force: bool = False) -> None:
        """Bring every widget up to the latest record now (see RedrawClock.redraw)."""
        self.clock.redraw(force)

    # --- opening files ---
    def open_dialog(self) -> None:
        """File > Open…"""
        path = self.dialogs.open_file(self, self.settings.last_directory())
        if path is not None:
            self.settings.set_last_directory(path.parent)
            self.open_path(path)

    def open_path(
        self,
        path: str | Path,
        *,
        trust: bool | None = None,
        input_shape: tuple[int, ...] | None = None,
        weights: str | None = None,
        seed: int = 0,
    ) -> bool:
        """Load `path` in a fresh experiment process; False when declined.

        A .py not yet trusted and a .pt ask first (trust, input shape).
        """
        path = Path(path)
        files = self.rank_sets.files_of(path)  # one torch.distributed job's run files: a rank and the ranks
        if files and not self.rank_sets.keeps(path):
            return self.rank_sets.open(files, path)
        if path.suffix.lower() == RUN_SUFFIX:
            return self.open_recording(path)
        if path.suffix.lower() not in OPENABLE:  # told at once: no process started, no place taken in Recent
            self.error_panel.show_error(
                UserCodeError(
                    f"{path.name} is no file bpviz opens",
                    f"give an experiment file (.py), a saved model ({', '.join(PICKLE_SUFFIXES)}) or a recorded "
                    f"run ({RUN_SUFFIX})",
                    str(path),
                )
            )
            return False
        self.rank_sets.close()
        if path.suffix.lower() == ".py" and path.is_file() and not self.code_trust.allows(self, path):
            return False
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
        request = LoadRequest(
            path=path, trust=bool(trust), weights=weights, input_shape=input_shape, seed=seed, record=runs_folder()
        )
        self.start_load(request)
        return True

    def start_load(self, request: LoadRequest, told: str | None = None) -> None:
        """Load `request` in a fresh experiment process; the loading strip names it, with Stop, until it answers.

        The previous file's failure is taken down and the title names the file now loading, at once: left up, an old
        traceback read as the new file's. The file goes into Recent now, so one that fails is a click away again."""
        self.error_panel.hide()
        self._step_error_shown = False
        self.settings.add_recent(request.path)
        self._refresh_recent()
        self.loading_panel.start(request.path.name)
        self.setWindowTitle(f"Loading {request.path.name}… — bpviz")
        self.statusBar().showMessage(told or f"Loading {request.path.name}…")
        self.controller.load(request)
        self.update_actions()

    def open_recording(self, path: str | Path) -> bool:
        """Show the run file `path` read-only, followed while its writer records.

        False, with the error panel, when it cannot be read.
        """
        path = Path(path)
        try:
            recording = Recording(path, self.timeline, self)
        except RunFileError as error:
            self.error_panel.show_error(error)
            self._step_error_shown = False
            self.statusBar().showMessage(error.what, 8000)
            return False
        self.controller.stop()
        if self.controller.pending is not None:  # a file still loading would replace this recording once loaded
            self.controller.end_process()
        self._close_recording()
        if not self.rank_sets.keeps(path):
            self.rank_sets.close()
        self.recording = recording
        recording.changed.connect(self.clock.mark_dirty)
        recording.state_changed.connect(self._on_recording_state)
        recording.follower.grew.connect(lambda new: self.status.arrived(len(new)))
        recording.failed.connect(self.error_panel.show_error)
        self._show_new_run()
        self.docks.show_recording(recording.playback.run.graph)
        self.timeline.show()
        # The keyboard scrubs from the start: left to Qt, the focus lands in the layer filter, the first
        # widget in tab order, which takes the arrow keys and ',' '.' as text
        self.timeline.slider.setFocus()
        self._on_recording_state(recording.state)
        self.settings.add_recent(path)
        self._refresh_recent()
        self.statusBar().showMessage(f"Opened the recording {path} ({len(recording.playback.steps)} steps).", 8000)
        self.update_actions()
        return True

    def _shown_run(self) -> Path | None:
        """The run file the window shows: the recording open, or the one the training side records."""
        return self.recording.path if self.recording is not None else self.controller.run_path

    def _export_source(self) -> str:
        """What an exported figure's title names as its source: the recording shown (and the run compared with
        it, drawn dashed over some plots), else the file being trained."""
        recording = self.recording
        if recording is None:
            return self.controller.request.path.name if self.controller.request is not None else ""
        shown = _run_name(recording.playback.run)
        return shown if recording.other is None else f"{shown} compared with {_run_name(recording.other.run)}"

    def save_run_dialog(self) -> Path | None:
        """File > Save Run As…: a copy of the run shown (the recording, or the one trained) where the user says."""
        # the folder last opened from, else home (an empty one made it "/run.bpviz"); named as the run is
        shown = self._shown_run()
        folder = Path(self.settings.last_directory() or Path.home())
        suggested = folder / (shown.name if shown is not None else f"run{RUN_SUFFIX}")
        path = self.dialogs.save_file(self, "Save run as", str(suggested), "bpviz runs (*.bpviz)")
        return self.save_run(path) if path is not None else None

    def save_run(self, path: str | Path) -> Path | None:
        """Copy the run shown to `path` (consistent even while it is written, atomic); None, told, when it cannot."""
        source = self._shown_run()
        if source is None:
            return None
        try:
            saved = save_copy(source, Path(path))
        except RunFileError as error:
            self.error_panel.show_error(error)
            return None
        self.settings.add_recent(saved)
        self._refresh_recent()
        self.statusBar().showMessage(f"Saved the run to {saved}", 8000)
        return saved

    def compare_dialog(self) -> None:
        """File > Compare With…: pick a second run file to overlay on the open recording."""
        shown = _run_name(self.recording.playback.run) if self.recording is not None else "the open run"
        path = self.dialogs.open_run(self, f"Compare {shown} with a recorded run", self.settings.last_directory())
        if path is not None:
            self.compare_with(path)

    def compare_with(self, path: str | Path) -> dict | None:
        """Overlay the run file `path` on the open recording; its comparison, or None (with the error panel)."""
        if self.recording is None:
            return None
        try:
            result = self.recording.compare_with(path)
        except RunFileError as error:
            self.error_panel.show_error(error)
            return None
        self._on_recording_state(self.recording.state)
        div = result["divergence"]
        if div is None:
            told = "no divergence over the common steps"
        else:
            where = f", layer {div['layer']}" if div["layer"] else ""
            told = f"the runs diverge at step {div['step']}{where} ({div['statistic']})"
        if result["layers_only_in_a"] or result["layers_only_in_b"]:  # another model: most of it is not compared
            told += f"; they have different layers, compared by name: {layer_difference(result)}"
        self.statusBar().showMessage(f"Compared with {Path(path).name}: {told}", 15000)
        return result

    def _draw_comparison(self, view: str) -> None:
        """View `view` was drawn: the second run's curves over it, as that run stood at the same step."""
        recording = self.recording
        other = recording.other_view if recording is not None else None
        if other is None:
            self.comparison.draw(view, None, self.page.selected_layer())
            return
        names = (_run_name(recording.playback.run), _run_name(recording.other.run))
        drawn = recording.view.history.latest  # the step this draw shows (the clock's moves on once it is done)
        shown = drawn.step if drawn is not None else None
        self.comparison.draw(view, other.history, self.page.selected_layer(), names, shown)

    def _steps_coming(self) -> bool:
        """Whether steps arrive by themselves: this window trains, or the run it follows is being written."""
        return self.controller.running or (self.recording is not None and self.recording.state == "live")

    def _on_recording_state(self, state: str) -> None:
        recording = self.recording
        name = recording.path.name if recording is not None else ""
        compared = ""
        if recording is not None and recording.other is not None:
            compared = f" compared with {_run_name(recording.other.run)}"
        self.setWindowTitle(f"{name}{compared} — {'live ' if state == 'live' else ''}recording (read-only) — bpviz")
        self.status.show_run_state(state)

    def _close_recording(self) -> None:
        if self.recording is not None:
            self.recording.close()
            self.recording.deleteLater()
            self.recording = None
        self.timeline.hide()
        self.status.show_run_state(None)

    def _show_new_run(self) -> None:
        """Nothing of the previous run stays on screen: the debugger page, cleared, draws the new one."""
        self.clock.restart()
        self.status.forget_arrivals()
        self.page.clear()
        self.error_panel.hide()
        self._step_error_shown = False
        self.stack.setCurrentWidget(self.page)
        # the keys go to the table, not to the first field in the tab order (the layer filter would take ','
        # and '.' as text, and the arrow keys would move its cursor instead of the selection)
        self.page.table.setFocus()
        self.status.show(None)

    def clear_recent(self) -> None:
        self.settings.clear_recent()
        self._refresh_recent()

    # --- training commands (toolbar, menu, shortcuts) ---
    def step(self) -> None:
        self.controller.step()
        self.update_actions()

    def step_into(self) -> None:
        """F11: step into a new step, or one event further in the paused one."""
        self.controller.step_into()
        self.update_actions()
        if self.controller.stepping:
            self._show_until_stepped(STEPPING_INTO, 3000)

    def step_out(self) -> None:
        self.controller.step_out()
        self.update_actions()

    def run(self) -> None:
        self.controller.run(0)
        self.update_actions()

    def run_n(self, steps: int | None = None) -> None:
        """Run N steps: `steps`, or the number in the toolbar's box."""
        self.controller.run(steps if steps is not None else self.actions_.steps_box.value())
        self.update_actions()

    def pause(self) -> None:
        self.controller.stop()

    def stop(self) -> None:
        """Stop (Shift+F5): kill the experiment process loading a file, or else the one training; told once gone."""
        if self.controller.end_process():
            self.statusBar().showMessage("Stopping: killing the experiment process…")

    def validate(self) -> None:
        self.controller.validate()
        self.update_actions()

    def rewind_dialog(self) -> None:
        """Train > Rewind to Step…: ask for the step, then go back to it."""
        latest = self.controller.view.history.latest
        if latest is not None and latest.step > 0:  # at step 0 there is no step before it to go back to
            step = self.dialogs.ask_rewind_step(self, latest.step)
            if step is not None:
                self.rewind_to(step)

    def rewind_to(self, step: int) -> bool:
        """Go back to the end of `step` of the training shown; `rewound` redraws every view there."""
        if not self.controller.rewind(step):
            return False
        self.statusBar().showMessage(f"Rewinding to step {step}…")
        self.update_actions()
        return True

    def reset(self) -> None:
        """Reset: rebuild the model from its file with the same seed, what was shown cleared once it is rebuilt;
        Reload: load again the file that failed (or is loading)."""
        target = self.controller.reload_target
        if target is not None:
            self.start_load(target, "Resetting…" if target == self.controller.request else None)

    # --- the training side's answers ---
    def _on_loaded(self, request: LoadRequest) -> None:
        self.loading_panel.finish()
        self._close_recording()
        self._show_new_run()
        self.setWindowTitle(f"{request.path.name} — bpviz")
        self._show_until_stepped(f"Loaded {request.path} (seed {request.seed}). Press F10 to step, F5 to run.", 8000)
        self.update_actions()
        self.loaded.emit(request)

    def _on_failed(self, error: UserCodeError) -> None:
        self.error_panel.show_error(error)
        self._step_error_shown = True
        if error.layer:
            # a container that raised is no row of the table: the first layer it holds stands for it
            names = self.page.table_model.names()
            inside = layers_inside(error.layer, names)
            self.page.select_layer(error.layer if error.layer in names or not inside else inside[0])
        self.statusBar().showMessage(error.what, 8000)
        self.update_actions()
        self.failed.emit(error)

    def _on_load_failed(self, error: UserCodeError) -> None:
        self.loading_panel.finish()
        shown = self._retitle_for_the_open_run()
        if shown is not None:  # the model or recording that was open stays: say so, or its steps pass for the file's
            error = UserCodeError(
                error.what, f"{error.why}; the window still shows {shown}", error.where, error.layer, error.details
            )
        self.error_panel.show_error(error)
        self._step_error_shown = False
        self.statusBar().showMessage(error.what, 8000)
        self.update_actions()
        self.load_failed.emit(error)

    def _retitle_for_the_open_run(self) -> str | None:
        """Put back the title of the run still shown after a load failed; its name (None: only the start page)."""
        if self.recording is not None:
            self._on_recording_state(self.recording.state)
            return self.recording.path.name
        if self.controller.request is not None and self.stack.currentWidget() is self.page:
            self.setWindowTitle(f"{self.controller.request.path.name} — bpviz")
            return self.controller.request.path.name
        self.setWindowTitle("bpviz")
        return None

    def _on_stepped(self, step: int) -> None:
        if self._step_error_shown:  # the failure it shows is over: this step (a retry, or the next one) went through
            self.error_panel.hide()
            self._step_error_shown = False
        self.status.arrived()
        # the user stepped: how to step is old news, a step stepped into is over (F11 at its last pause), and
        # "Back at step 3: change what you like" is no longer where the run stands
        if self._until_stepped and self.statusBar().currentMessage() == self._until_stepped:
            self.statusBar().clearMessage()
        self._until_stepped = ""
        self.clock.mark_dirty()
        if not self.controller.running:
            self.update_actions()
        self.stepped.emit(step)

    def _on_validated(self, step: int, metrics: dict) -> None:
        self.clock.mark_dirty()
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()) or "no validation data in this experiment"
        self.statusBar().showMessage(f"Validation after step {step}: {shown}", 10000)
        self.update_actions()
        self.validated.emit(step, metrics)

    def _on_remedy_applied(self, _step: int, _label: str) -> None:
        self.redraw(force=True)  # the marks on every time axis, before the next step
        self.update_actions()

    def _on_rewound(self, step: int, branch: int) -> None:
        self.redraw(force=True)  # every view ends at the step gone back to
        kept = self.controller.run_path
        where = f" in {kept.name} (open it, then File > Compare With… itself, to see both side by side)" if kept else ""
        self._show_until_stepped(
            f"Back at step {step}: change what you like, then step on; the steps from {step + 1} are branch {branch}"
            f"{where}",
            20000,
        )
        self.update_actions()

    def _show_until_stepped(self, text: str, timeout_ms: int) -> None:
        """A status message that the next recorded step takes down (or its timeout, if sooner)."""
        self._until_stepped = text
        self.statusBar().showMessage(text, timeout_ms)

    def _on_run_started(self, total: int) -> None:
        self.status.progress.start(total)
        self.update_actions()
        self.run_started.emit(total)

    def _on_run_finished(self, how: str) -> None:
        self.status.progress.finish()
        self.status.forget_arrivals()
        self.clock.mark_dirty()  # the status bar's steps/s goes back to "–"
        self.update_actions()
        self.run_finished.emit(how)

    def update_actions(self, *_args) -> None:
        """Enable what makes sense now (the actions decide, from the controller's state)."""
        recording = self.recording is not None
        self.actions_.set_state(self.controller, recording)
        self.docks.set_busy(recording or not (self.controller.has_model and not self.controller.busy), recording)
        self.docks.describe_state(recording)

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
        latest = self.history.latest
        step = None if latest is None else latest.step
        source = self._export_source()
        for view_name, view in self.plots.items():
            self.plots.refresh(view_name, self.history)  # a view in a hidden tab is drawn only when shown
            layer = view.export_layer()
            for target_name, widget in view.export_targets().items():
                title = "   ·   ".join(
                    str(part)
                    for part in (target_name.capitalize(), layer, None if step is None else f"step {step}", source)
                    if part
                )
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
        self.clock.add_paint(time.perf_counter() - started)
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
        recent = self.settings.recent_files()
        self.start_page.set_recent([p for p in recent if p.suffix.lower() != RUN_SUFFIX])
        opened = [p for p in recent if p.suffix.lower() == RUN_SUFFIX]
        kept = [p for p in newest_runs(runs_folder()) if p.resolve() not in {q.resolve() for q in opened}]
        self.start_page.set_runs(opened + kept)

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
            for dock in self.docks.docks:
                dock.show()

    def showEvent(self, event) -> None:
        """Once shown, make sure window and frame fit the screen it landed on; again when the frame is known."""
        super().showEvent(event)
        self._fit_when_framed = True
        QTimer.singleShot(0, lambda: geometry.fit(self, self.screen_area))

    def moveEvent(self, event) -> None:
        """The window manager's first move after showing tells the frame's size: fit again (a title bar may push the
        bottom off the screen)."""
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
        self.clock.stop()
        self._close_recording()
        self.controller.shutdown()
        super().closeEvent(event)


def _dropped_file(mime) -> Path | None:
    """The first local .py/.pt/.bpviz file among dropped URLs, if any."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in OPENABLE:
                return path
    return None


def _run_name(run: Run) -> str:
    """A run file's name, with its branch when it is not the run as first trained (a rewind's)."""
    return run.path.name + (f" (branch {run.branch})" if run.branch > 1 else "")
