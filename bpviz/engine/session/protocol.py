"""What the window and the experiment's process say to each other over their control channel.

Every message is a tuple `(kind, args)`: plain data that pickles (LoadRequest,
run events, PhaseEvent, UserCodeError, dead units). These pickles come from
bpviz's own child process, never from a user's file. Commands in IMMEDIATE are
obeyed by the child's listening thread at once, even while the user's code
holds the main thread (a paused or endless step); every other command queues
behind the one in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoadRequest:
    """What to load and how: kept so Reset can rebuild the same model with the same seed."""

    path: Path
    trust: bool = False
    weights: str | None = None
    input_shape: tuple[int, ...] | None = None
    seed: int = 0
    record: Path | None = None  # a run file, or a folder for a new dated one, receiving every step


# window -> child, queued: the driver method of the same name runs with the args
QUEUED_COMMANDS = (
    "load",
    "step",
    "step_into",
    "run",
    "validate",
    "apply_remedy",
    "undo_remedy",
    "rewind",
    "inspect_units",
    "close",
)
# window -> child, obeyed at once: ("stop", (run_id,)), ("resume", (mode,)), ("abort", ()), ("breakpoints", (list,)),
# ("state", (tensors,)): answered by ("state", (dict,))
IMMEDIATE = ("stop", "resume", "abort", "breakpoints", "state")
# child -> window: the driver's answer names (see engine/session/driver.py ANSWERS)
