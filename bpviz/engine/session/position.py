"""Where the experiment process is: step, phase and layer, kept in memory the window can read after the process died.

A process killed by a segfault or `os._exit()` says nothing on its way out,
so it cannot tell the window where it was. Instead it writes its position
into a small block of shared memory as it goes (a few hundred bytes, a
memmove per layer, no message), and the window reads the block once the
process is gone: "killed by signal SIGSEGV in backward of layer3.conv2 at
step 12".
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.context import BaseContext

SIZE = 512  # bytes: step, phase and a layer name; a longer name is cut


@dataclass(frozen=True)
class Where:
    """A position read back: the step, the phase (None between steps) and the layer (None outside forward/backward)."""

    step: int
    phase: str | None
    layer: str | None

    def words(self) -> str:
        """ "in backward of layer3.conv2 at step 12", "in loss at step 3", "at step 5"."""
        at = f"at step {self.step}"
        if self.phase is None:
            return at
        return f"in {self.phase} of {self.layer} {at}" if self.layer else f"in {self.phase} {at}"


class Position:
    """The shared block: written by the experiment process, read by the window (see the module's docstring)."""

    def __init__(self, context: BaseContext) -> None:
        self._block = context.RawArray("c", SIZE)  # no lock: one writer, and the reader reads once the writer is gone
        self._step = 0
        self._phase: str | None = None

    def phase(self, step: int, phase: str | None) -> None:
        """The process enters `phase` of `step` (None: between steps, `step` the next one)."""
        self._step, self._phase = step, phase
        self._write(None)

    def layer(self, phase: str, layer: str | None) -> None:
        """A hook reached `layer` in `phase` ("forward": entered; "backward": its gradient arrived)."""
        self._phase = phase
        self._write(layer)

    def read(self) -> Where:
        """The position last written (the window reads it after the process ended)."""
        parts = bytes(self._block.value).decode("utf-8", "replace").split("\t")
        step, phase, layer = (parts + ["", "", ""])[:3]
        return Where(int(step) if step.isdigit() else 0, phase or None, layer or None)

    def _write(self, layer: str | None) -> None:
        text = f"{self._step}\t{self._phase or ''}\t{layer or ''}".encode()
        self._block.value = text[: SIZE - 1]
