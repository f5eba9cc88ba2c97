"""Where in the user's code a layer is called: one place called in a loop is one layer, not one per time step.

An LSTMCell decoder calls the same cell once per time step from one line;
counted per call that is hundreds of layers (`cell#199`). The place is the
chain of the user's frames that made the call, each frame's code and
instruction, out to the first frame of torch's (the container's module
call): two calls on one line differ, the same call in a loop does not, and
one helper called from two places (`def act(t): return torch.relu(t)`
after fc1 and after fc2) is two layers, not one whose second call hides
the first's dead units. Calls made by torch's own containers (Sequential,
ModuleList iteration) have no such place: the same module at two positions
of a Sequential stays two layers.
"""

from __future__ import annotations

import os
from types import FrameType

from bpviz.engine.observe.frames import TORCH_DIR, in_bpviz, in_torch

_CALL_MACHINERY = os.path.join(TORCH_DIR, "nn", "modules", "module.py")
_DISPATCH = os.path.join(TORCH_DIR, "overrides.py")  # handle_torch_function, which calls the function mode


def call_site(frame: FrameType | None) -> tuple | None:
    """((code, instruction), ...) of the user's frames that made the call seen from `frame`, innermost first, out
    to torch's or bpviz's own code; None when torch itself made it."""
    while frame is not None and (frame.f_code.co_filename == _CALL_MACHINERY or in_bpviz(frame)):
        frame = frame.f_back
    if frame is None or in_torch(frame):
        return None
    site = []
    while frame is not None and not in_torch(frame) and not in_bpviz(frame):
        site.append((frame.f_code, frame.f_lasti))
        frame = frame.f_back
    return tuple(site)


def functional_call_site(frame: FrameType | None, func: object) -> tuple | None:
    """`call_site` of a functional activation seen from `frame`: the frames of torch's Python that run the
    function itself (`F.relu`, and the dispatch to the function mode that saw it) are no place of their
    own. Counted as torch's, they made every `F.relu` call in a user's loop a layer per call (`relu()#12`,
    one per time step), where `torch.relu`, a builtin with no frame, was one layer."""
    own = getattr(func, "__code__", None)
    while frame is not None and (in_bpviz(frame) or frame.f_code is own or frame.f_code.co_filename == _DISPATCH):
        frame = frame.f_back
    return call_site(frame)


def describe_site(site: tuple | None) -> str:
    """`call_site`'s innermost frame as a person reads it: "UNet.forward (unet.py:41)"; "the model's code"
    when torch's containers made the call."""
    if not site:
        return "the model's code"
    code, instruction = site[0]
    line = next((line for start, end, line in code.co_lines() if start <= instruction < end), None)
    where = os.path.basename(code.co_filename) + (f":{line}" if line is not None else "")
    return f"{code.co_qualname} ({where})"
