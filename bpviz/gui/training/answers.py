"""The signals the training side answers with, declared once for both of its backends.

The thread worker and the process client answer the controller with the
same signals, named as the session driver's answers
(engine/session/driver.py ANSWERS), so the controller connects to either
without knowing which one runs the experiment.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class TrainingAnswers(QObject):
    """What the training side says back: one signal per driver answer."""

    loaded = Signal(object, object)  # LoadRequest, run file path (None: not recording)
    event = Signal(object)
    failed = Signal(object)
    load_failed = Signal(object)
    run_started = Signal(int)
    progress = Signal(int, int)
    run_finished = Signal(str)
    step_aborted = Signal()
    paused = Signal(object)
    breakpoint_hit = Signal(object)
    remedy_failed = Signal(str)
    graph_changed = Signal(object)
    units_inspected = Signal(str, int, object)
    hyperparameters = Signal(object)
