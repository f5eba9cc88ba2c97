"""Menus, toolbar and shortcuts: every command the window offers, made once as a QAction.

The same QAction sits in the menu and on the toolbar, so a shortcut, a menu
click and a toolbar click are one code path, and enabling one enables all.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QHBoxLayout, QMainWindow, QMenu, QProgressBar, QPushButton, QSizePolicy, QSpinBox, QStyle,
                               QToolBar, QWidget)

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
                action.setIcon(style.standardIcon(icon))
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip or text.replace('…', '')}" + (f"  ({keys})" if keys else ""))
            action.setStatusTip(tip or text)
            action.triggered.connect(lambda _checked=False: slot())
            return action

        w = window
        # File
        self.open = make("&Open…", w.open_dialog, QKeySequence.StandardKey.Open, sp.SP_DialogOpenButton,
                         "Open an experiment file (.py) or a whole saved model (.pt)")
        self.load_weights = make("Load &weights…", lambda: weights_files.ask_and_load(w), None, None,
                                 "Load a state dict (torch.save(model.state_dict(), path)) into the open experiment")
        self.clear_recent = make("Clear recent files", w.clear_recent)
        self.quit = make("&Quit", w.close, QKeySequence.StandardKey.Quit)
        # Edit
        self.copy_csv = make("&Copy table as CSV", w.copy_table_csv, "Ctrl+Shift+C", None,
                             "Copy the layer table to the clipboard as CSV")
        self.save_csv = make("Save table as CSV…", w.save_table_csv, None, None, "Save the layer table as a CSV file")
        self.export_plots = make("&Export plots…", w.export_plots, "Ctrl+E", None,
                                 "Save every plot as PNG and SVG in a folder")
        # View
        self.reset_layout = make("Reset &layout", w.reset_layout, None, None,
                                 "Put every panel back where it fits this screen, at its default size")
        # Train
        self.step = make("&Step", w.step, Qt.Key.Key_F10, sp.SP_MediaSkipForward, "One training step")
        self.run = make("&Run", w.run, Qt.Key.Key_F5, sp.SP_MediaPlay, "Train until paused")
        self.pause = make("&Pause", w.pause, Qt.Key.Key_F6, sp.SP_MediaPause, "Pause after the current step")
        self.run_n = make("Run &N steps", w.run_n, "Ctrl+F5", sp.SP_MediaSeekForward, "Train the number of steps in the box")
        self.validate = make("&Validate", w.validate, "Ctrl+Shift+V", sp.SP_DialogApplyButton,
                             "Run the experiment's validation now")
        self.reset = make("Rese&t", w.reset, "Ctrl+R", sp.SP_BrowserReload,
                          "Rebuild the model from its file with the same seed")
        # Help
        self.shortcuts = make("&Keyboard shortcuts", lambda: help_pages.show_shortcuts(w), QKeySequence.StandardKey.HelpContents,
                              None, "Every key the window knows")
        self.how_to_read = make("&How to read these plots", lambda: help_pages.show_how_to_read(w), None, None,
                                "What each plot shows and what a problem looks like in it")
        self.about = make("&About bpviz", w.about)

        self.steps_box = QSpinBox()
        self.steps_box.setRange(1, 1_000_000)
        self.steps_box.setValue(100)
        self.steps_box.setSuffix(" steps")
        self.steps_box.setToolTip("How many steps Run N takes")
        self.steps_box.setKeyboardTracking(False)

        self.recent_menu = QMenu("Open &Recent", window)
        self.training = [self.step, self.run, self.pause, self.run_n, self.validate, self.reset]
        self.needs_model = [self.copy_csv, self.save_csv, self.export_plots]

    def install(self) -> QToolBar:
        """Fill the window's menu bar and add the main toolbar."""
        bar = self.window.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open)
        file_menu.addMenu(self.recent_menu)
        file_menu.addAction(self.load_weights)
        file_menu.addSeparator()
        file_menu.addAction(self.quit)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.copy_csv)
        edit_menu.addAction(self.save_csv)
        edit_menu.addSeparator()
        edit_menu.addAction(self.export_plots)
        self.view_menu = bar.addMenu("&View")
        self.view_menu.addAction(self.reset_layout)
        train_menu = bar.addMenu("&Train")
        for action in (self.step, self.run, self.pause, self.run_n):
            train_menu.addAction(action)
        train_menu.addSeparator()
        train_menu.addAction(self.validate)
        train_menu.addAction(self.reset)
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
        toolbar.addAction(self.step)
        toolbar.addAction(self.run)
        toolbar.addAction(self.pause)
        toolbar.addSeparator()
        toolbar.addWidget(self.steps_box)
        toolbar.addAction(self.run_n)
        toolbar.addSeparator()
        toolbar.addAction(self.validate)
        toolbar.addAction(self.reset)
        self.window.addToolBar(toolbar)
        return toolbar

    def set_state(self, has_model: bool, running: bool, busy: bool) -> None:
        """Enable what makes sense now: nothing trains twice, nothing steps without a model."""
        idle = has_model and not busy
        self.step.setEnabled(idle)
        self.run.setEnabled(idle)
        self.run_n.setEnabled(idle)
        self.validate.setEnabled(idle)
        self.pause.setEnabled(running)
        self.reset.setEnabled(self.window.controller.request is not None)
        self.load_weights.setEnabled(self.window.controller.request is not None and not busy)
        self.steps_box.setEnabled(not running)
        for action in self.needs_model:
            action.setEnabled(has_model)


class RunProgress(QWidget):
    """Progress of a Run N, with Cancel; lives in the status bar and hides when no run counts steps."""

    def __init__(self, cancel: Callable[[], None], parent=None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(True)
        self.bar.setFormat("%v / %m")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: cancel())
        self.cancel_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)  # not a status-bar-wide bar
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.hide()

    def start(self, total: int) -> None:
        self.bar.setRange(0, total)
        self.bar.setValue(0)
        self.setVisible(total > 0)

    def advance(self, done: int) -> None:
        self.bar.setValue(done)

    def finish(self) -> None:
        self.hide()
