"""Pausing the training thread inside a step, at each layer of each phase, as a debugger's Step Into does.

The training thread calls `pause()` from inside the hooks, so what a paused
debugger shows is the live tensor of that moment, not a replay. Another
thread (the window) decides how far to go next with `resume()`, or stops
the step with `abort()`, which raises `StepAborted` in the training thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PHASES = ("forward", "loss", "backward", "update")

RUN = "run"  # never pause
INTO = "into"  # pause at every event
OUT = "out"  # pause at the first event of another phase
OVER = "over"  # finish the step without pausing


@dataclass(frozen=True)
class PhaseEvent:
    """Where a paused step stands, with a sample of the live tensor there."""

    step: int
    phase: str  # one of PHASES
    layer: str | None  # the layer reached (forward/backward), None for loss and update
    index: int  # position of this event within its phase, 0-based
    values: np.ndarray | None = None  # sample of the layer's output (forward) or incoming gradient (backward)
    norm: float | None = None
    mean: float | None = None
    std: float | None = None
    loss: float | None = None
    update_ratios: dict[str, float] | None = None  # parameter -> ||dW|| / ||W|| of this step's update


class StepAborted(Exception):
    """Raised in the training thread when a paused (or pausable) step is stopped."""


class Gate:
    """Thread-safe pause point shared by the training thread and its controller."""

    def __init__(self, on_pause: Callable[[PhaseEvent], None] | None = None) -> None:
        self._cond = threading.Condition()
        self._mode = RUN
        self._out_of: str | None = None
        self._released = False
        self._aborted = False
        self.paused_at: PhaseEvent | None = None
        self.on_pause = on_pause  # called in the training thread when it pauses

    @property
    def mode(self) -> str:
        return self._mode

    def arm(self, mode: str) -> None:
        """Choose how the next step pauses (INTO to start stepping into it)."""
        with self._cond:
            self._mode = mode
            self._aborted = False

    def wants(self, phase: str) -> bool:
        """Cheap check the training thread makes before building an event."""
        return self._aborted or self._mode == INTO or (self._mode == OUT and phase != self._out_of)

    def pause(self, event: PhaseEvent) -> None:
        """Block the training thread at `event` until resumed; raise StepAborted if stopped."""
        with self._cond:
            if self._aborted:
                raise StepAborted
            self.paused_at = event
            self._released = False
        if self.on_pause is not None:
            self.on_pause(event)
        with self._cond:
            while not (self._released or self._aborted):
                self._cond.wait()
            self.paused_at = None
            if self._aborted:
                raise StepAborted

    def resume(self, mode: str) -> None:
        """Let a paused step go on: INTO to the next event, OUT to the next phase, OVER to the step's end."""
        with self._cond:
            if mode == OUT:
                self._out_of = self.paused_at.phase if self.paused_at else None
            self._mode = mode
            self._released = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Stop the step at its next pause point (at once, if it is paused)."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def finish(self) -> None:
        """Back to running freely once a step has ended or been aborted."""
        with self._cond:
            self._mode = RUN
            self._aborted = False
            self._out_of = None
            self.paused_at = None
