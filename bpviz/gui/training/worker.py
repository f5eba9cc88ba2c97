"""Training on a thread of the window's process: one worker QObject in one QThread owns a SessionDriver.

The in-process backend (the window's default until the child process
carries every test; see process_client.py for the other). The worker only
turns the driver's answers into signals of the same names and its slots
into driver commands. Nothing in the window connects to these signals
directly: `TrainingController` takes them in on the GUI thread (a callable
connected to a signal of this object would run on the training thread, and
a widget touched from there crashes Qt).
"""

from __future__ import annotations

from PySide6.QtCore import Slot

from bpviz.engine.session.breakpoints import Breakpoint
from bpviz.engine.session.driver import SessionDriver
from bpviz.engine.session.protocol import LoadRequest
from bpviz.engine.session.step_gate import Gate
from bpviz.gui.training.answers import TrainingAnswers

__all__ = ["LoadRequest", "TrainingWorker"]


class TrainingWorker(TrainingAnswers):
    """Lives on the training thread; every slot runs there. Its signals: answers.py."""

    def __init__(self) -> None:
        super().__init__()
        # The driver answers on the training thread; a signal emitted there is queued to the controller.
        self.driver = SessionDriver(lambda name, *args: getattr(self, name).emit(*args))

    @property
    def stepper(self):
        return self.driver.stepper

    @property
    def gate(self) -> Gate:
        return self.driver.gate

    @property
    def breakpoints(self) -> list[Breakpoint]:
        return self.driver.breakpoints

    @breakpoints.setter
    def breakpoints(self, value: list[Breakpoint]) -> None:
        self.driver.breakpoints = value

    def request_stop(self, upto: int) -> None:
        """Thread-safe: runs numbered up to `upto` end after the step in progress."""
        self.driver.request_stop(upto)

    @Slot(object)
    def load(self, request: LoadRequest) -> None:
        self.driver.load(request)

    @Slot()
    def step(self) -> None:
        self.driver.step()

    @Slot(str, int)
    def step_into(self, mode: str, step_id: int) -> None:
        self.driver.step_into(mode, step_id)

    @Slot(int, int)
    def run(self, total: int, run_id: int) -> None:
        self.driver.run(total, run_id)

    @Slot()
    def validate(self) -> None:
        self.driver.validate()

    @Slot(str, object)
    def apply_remedy(self, name: str, args: tuple) -> None:
        self.driver.apply_remedy(name, args)

    @Slot()
    def undo_remedy(self) -> None:
        self.driver.undo_remedy()

    @Slot(int)
    def rewind(self, step: int) -> None:
        self.driver.rewind(step)

    @Slot(str)
    def inspect_units(self, layer: str) -> None:
        self.driver.inspect_units(layer)

    @Slot()
    def close(self) -> None:
        """Release the Stepper (its hooks), then end this thread's event loop.

        The loop is ended from here, after the release: a quit() sent from the GUI thread
        can end the loop before this queued command runs, leaving the hooks on the model.
        """
        self.driver.close()
        self.thread().quit()
