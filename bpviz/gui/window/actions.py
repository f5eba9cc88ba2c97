"""Menus, toolbar and shortcuts: every command the window offers, made once as a QAction.

The same QAction sits in the menu and on the toolbar, so a shortcut, a menu
click and a toolbar click are one code path, and enabling one enables all.
Menus and the toolbar are declared here in their order, and `set_state` is
the one place that decides which actions are enabled.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QSpinBox, QStyle, QToolBar

from bpviz.gui import theme
from bpviz.gui.training.controller import TrainingController
from bpviz.gui.window import help as help_pages
from bpviz.gui.window import weights as weights_files


class WindowActions:
    """Owns the QActions; `window` supplies the slots named in `_make`."""

    def __init__(self, window: QMainWindow) -> None:
        self.window = window
        style = window.style()
        sp = QStyle.StandardPixmap

        def make(text: str, slot: Callable, shortcut=None, icon=None, tip: str = "") -> QAction:
            action = QAction(text, window)
            if shortcut is not None:
                action.setShortcut(QKeySequence(shortcut))
                action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if icon is not None:
                action.setIcon(theme.muted_when_disabled(style.standardIcon(icon)))
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip or text.replace('…', '')}" + (f"  ({keys})" if keys else ""))
            action.setStatusTip(tip or text)
            action.triggered.connect(lambda _checked=False: slot())
            return action

        w = window
        # File
        self.open = make(
            "&Open…",
            w.open_dialog,
            QKeySequence.StandardKey.Open,
            sp.SP_DialogOpenButton,
            "Open an experiment file (.py), a whole saved model (.pt) or a recorded run (.bpviz)",
        )
        self.load_weights = make(
            "Load &weights…",
            lambda: weights_files.ask_and_load(w),
            None,
            None,
            "Load a state dict (torch.save(model.state_dict(), path)) into the open experiment",
        )
        self.compare = make(
            "Compare &With…",
            w.compare_dialog,
            None,
            None,
            "Overlay a second recorded run: its loss, gradient flow and histograms, and where the two diverge",
        )
        self.save_run = make(
            "&Save Run As…",
            w.save_run_dialog,
            QKeySequence.StandardKey.SaveAs,
            None,
            "Keep a copy of the run shown (every step recorded so far) where you choose",
        )
        self.clear_recent = make("Clear recent files", w.clear_recent)
        self.quit = make("&Quit", w.close, QKeySequence.StandardKey.Quit)
        # Edit
        self.copy_csv = make(
            "&Copy table as CSV", w.copy_table_csv, "Ctrl+Shift+C", None, "Copy the layer table to the clipboard as CSV"
        )
        self.save_csv = make("Save table as CSV…", w.save_table_csv, None, None, "Save the layer table as a CSV file")
        # View
        self.reset_layout = make(
            "Reset &layout",
            w.reset_layout,
            None,
            None,
            "Put every panel back where it fits this screen, at its default size",
        )
        self.export_plots = make(
            "&Export plots…", w.export_plots, "Ctrl+E", None, "Save every plot as PNG and SVG in a folder"
        )
        # Train
        self.step = make(
            "Step &Over",
            w.step,
            Qt.Key.Key_F10,
            sp.SP_MediaSkipForward,
            "One whole training step; when paused inside a step, finish it",
        )
        self.run = make("&Run", w.run, Qt.Key.Key_F5, sp.SP_MediaPlay, "Train until paused")
        self.pause = make(
            "&Pause",
            w.pause,
            Qt.Key.Key_F6,
            sp.SP_MediaPause,
            "Pause a run after its step; stop a paused step (nothing of it is kept)",
        )
        self.stop = make(
            "&Stop",
            w.stop,
            "Shift+F5",
            sp.SP_MediaStop,
            "Kill the experiment process now: a file loading (its build() may never return) or a run",
        )
        self.run_n = make(
            "Run &N steps", w.run_n, "Ctrl+F5", sp.SP_MediaSeekForward, "Train the number of steps in the box"
        )
        self.validate = make(
            "&Validate", w.validate, "Ctrl+Shift+V", sp.SP_DialogApplyButton, "Run the experiment's validation now"
        )
        self.reset = make(
            "Rese&t", w.reset, "Ctrl+R", sp.SP_BrowserReload, "Rebuild the model from its file with the same seed"
        )
        self.rewind = make(
            "Re&wind to Step…",
            w.rewind_dialog,
            "Ctrl+Shift+Z",
            None,
            "Go back to an earlier step and train on from there, with a change if you like; the run keeps both lines",
        )
        # Debug
        self.step_into = make(
            "Step &Into",
            w.step_into,
            Qt.Key.Key_F11,
            sp.SP_ArrowDown,
            "Pause inside the step: at each layer forward, the loss, each layer backward, the update",
        )
        self.step_out = make(
            "Step O&ut", w.step_out, "Shift+F11", sp.SP_ArrowUp, "Finish the current phase of the paused step"
        )
        # Timeline (a recording)
        self.back = make(
            "Back one step", lambda: w.timeline.move(-1), ",", None, "Show the recorded run one step earlier"
        )
        self.forward = make(
            "Forward one step", lambda: w.timeline.move(1), ".", None, "Show the recorded run one step later"
        )
        self.first = make(
            "First step", w.timeline.go_first, Qt.Key.Key_Home, None, "Show the recorded run's first step"
        )
        self.live = make(
            "&Live", w.timeline.go_live, Qt.Key.Key_End, None, "Back to the latest step, following new ones"
        )
        self.back.setShortcuts([QKeySequence(","), QKeySequence(Qt.Key.Key_Left)])
        self.forward.setShortcuts([QKeySequence("."), QKeySequence(Qt.Key.Key_Right)])
        self.timeline_actions = [self.back, self.forward, self.first, self.live]
        for action in self.timeline_actions:
            action.setProperty(help_pages.WHEN, "in an opened recording")
        self.step_out.setProperty(help_pages.WHEN, "while paused inside a step")
        # Help
        self.shortcuts = make(
            "&Keyboard shortcuts",
            lambda: help_pages.show_shortcuts(w),
            QKeySequence.StandardKey.HelpContents,
            None,
            "Every key the window knows",
        )
        self.how_to_read = make(
            "&How to read these plots",
            lambda: help_pages.show_how_to_read(w),
            None,
            None,
            "What each plot shows and what a problem looks like in it",
        )
        self.about = make("&About bpviz", w.about)

        self.steps_box = QSpinBox()
        self.steps_box.setRange(1, 1_000_000)
        self.steps_box.setValue(100)
        self.steps_box.setSuffix(" steps")
        self.steps_box.setToolTip("How many steps Run N takes")
        self.steps_box.setKeyboardTracking(False)

        self.recent_menu = QMenu("Open &Recent", window)
        self.debug_menu = QMenu("&Debug", window)
        self.view_menu = QMenu("&View", window)  # Reset layout, then the docks add their toggles
        self.panels_menu = self.view_menu
        self.needs_model = [self.copy_csv, self.save_csv, self.export_plots]

    def install(self) -> QToolBar:
        """Fill the window's menu bar and add the main toolbar."""
        bar = self.window.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open)
        file_menu.addMenu(self.recent_menu)
        file_menu.addAction(self.load_weights)
        file_menu.addAction(self.compare)
        file_menu.addAction(self.save_run)
        file_menu.addSeparator()
        file_menu.addAction(self.quit)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.copy_csv)
        edit_menu.addAction(self.save_csv)
        edit_menu.addSeparator()
        edit_menu.addAction(self.export_plots)
        bar.addMenu(self.view_menu)
        self.view_menu.addAction(self.reset_layout)
        self.view_menu.addSeparator()
        train_menu = bar.addMenu("&Train")
        for action in (self.step, self.run, self.pause, self.stop, self.run_n):
            train_menu.addAction(action)
        train_menu.addSeparator()
        train_menu.addAction(self.validate)
        train_menu.addAction(self.rewind)
        train_menu.addAction(self.reset)
        bar.addMenu(self.debug_menu)  # Debug before Help, as in every IDE
        for action in (self.step_into, self.step, self.step_out, self.run, self.pause, self.stop):
            self.debug_menu.addAction(action)
        self.debug_menu.addSeparator()
        for action in self.timeline_actions:
            self.debug_menu.addAction(action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts)
        help_menu.addAction(self.how_to_read)
        help_menu.addSeparator()
        help_menu.addAction(self.about)

        toolbar = QToolBar("Training")
        toolbar.setObjectName("trainingToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        toolbar.addAction(self.open)
        toolbar.addSeparator()
        toolbar.addAction(self.step_into)
        toolbar.addAction(self.step)
        toolbar.addAction(self.step_out)
        toolbar.addAction(self.run)
        toolbar.addAction(self.pause)
        toolbar.addAction(self.stop)
        toolbar.addSeparator()
        toolbar.addWidget(self.steps_box)
        toolbar.addAction(self.run_n)
        toolbar.addSeparator()
        toolbar.addAction(self.validate)
        toolbar.addAction(self.reset)
        self.window.addToolBar(toolbar)
        return toolbar

    def set_state(self, controller: TrainingController, recording: bool = False) -> None:
        """Enable what makes sense now: nothing trains twice, nothing steps without a model; a paused step goes on.

        A recording is read-only: nothing trains, and the timeline's keys move through its steps.
        """
        c = controller
        paused = c.paused_at is not None and not recording
        idle = c.has_model and not c.busy and not recording
        for action in (*self.timeline_actions, self.compare):
            action.setEnabled(recording)
        self.step_into.setEnabled(idle or paused)
        self.step_out.setEnabled(paused)
        self.step.setEnabled(idle or paused)
        self.run.setEnabled(idle or paused)
        self.run.setText("&Continue" if paused else "&Run")
        self.run_n.setEnabled(idle)
        self.validate.setEnabled(idle and c.validates)
        self.validate.setToolTip(
            "Run the experiment's validation now"
            if c.validates or not c.has_model
            else "This experiment has no validation: return val_data from build() to validate"
        )
        latest = c.view.history.latest
        self.rewind.setEnabled(idle and latest is not None and latest.step > 0)  # a recording is never rewound
        self.pause.setEnabled(c.running or c.stepping)
        self.stop.setEnabled(c.pending is not None or (c.has_model and c.busy and not recording))
        self._set_reset(c, recording)
        self.load_weights.setEnabled(c.request is not None and not c.busy and not recording)
        self.steps_box.setEnabled(not c.running and not recording)
        for action in self.needs_model:
            action.setEnabled(c.has_model or recording)
        self.save_run.setEnabled(recording or c.run_path is not None)

    def _set_reset(self, c: TrainingController, recording: bool) -> None:
        """Reset rebuilds the open model; after a failed (or stopped) load, or during one, it is Reload and loads
        that file again, even over a recording."""
        target = c.reload_target
        reload = target is not None and target != c.request
        self.reset.setEnabled(target is not None and (reload or not recording))
        self.reset.setText("Re&load" if reload else "Rese&t")
        tip = f"Load {target.path.name} again" if reload else "Rebuild the model from its file with the same seed"
        self.reset.setToolTip(f"{tip}  ({self.reset.shortcut().toString()})")
        self.reset.setStatusTip(tip)
