"""Where experiment processes come from: a fork server, started off the GUI thread as the window opens.

Spawning each child would import torch anew for every load and Reset (seconds);
the server, a fresh interpreter without Qt, imports it (and the engine) once,
then forks a clean child per load that inherits nothing from the window. Its
first start is those seconds of imports, and the first `Process.start()` waits
for them: on the GUI thread that left the window black, unpainted, until the
first file had loaded. Here a thread starts the server, and forks one child
that does nothing, to learn when the server serves; a load asked before that
waits for `ready`, with the loading strip shown.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

from PySide6.QtCore import QObject, Qt, Signal, Slot


def experiment_context() -> multiprocessing.context.BaseContext:
    """The fork server's multiprocessing context, with what it preloads."""
    context = multiprocessing.get_context("forkserver")
    # torch._dynamo (with sympy) and the data and profiler packages are imported lazily by an optimizer's first
    # use and by the recorder: preloaded, a load in a fresh child takes milliseconds instead of seconds.
    context.set_forkserver_preload(
        [
            "torch._dynamo",
            "torch.utils.data",
            "torch.profiler",
            "bpviz.engine.session.child",
            "bpviz.engine.session.stepper",
            "bpviz.engine.load.experiment",
        ]
    )
    return context


class ForkServer(QObject):
    """Starts the fork server on a thread of its own; `ready` (on the GUI thread) once it forks children."""

    ready = Signal()
    _started = Signal()  # from the starting thread

    def __init__(self, context: multiprocessing.context.BaseContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.is_ready = False
        self._started.connect(self._on_started, Qt.ConnectionType.QueuedConnection)
        threading.Thread(target=self._start, name="bpviz-fork-server", daemon=True).start()

    def _start(self) -> None:
        try:
            # a child doing nothing (a builtin: a function of this module would import Qt into the server),
            # forked to learn that the server serves: it forks only once its imports are done
            child = self.context.Process(target=os.getpid, name="bpviz-fork-server-check", daemon=True)
            child.start()
            child.join()
        except Exception:  # noqa: BLE001 - a server that cannot start is told by the load that needs it
            pass
        try:
            self._started.emit()
        except RuntimeError:  # the window closed before the server served (its QObject is gone): no one to tell
            pass

    @Slot()
    def _on_started(self) -> None:
        self.is_ready = True
        self.ready.emit()
