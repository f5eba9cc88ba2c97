"""The shape of one input sample, as a person types it: one grammar for the command line and the window."""

from __future__ import annotations


def parse_shape(text: str) -> tuple[int, ...] | None:
    """'1, 3, 32, 32' or '1x3x32x32' or '(1,3,32,32)' as a shape tuple; None when it is not one."""
    cleaned = text.strip().strip("()[]").replace("x", ",").replace("×", ",").replace(" ", ",")
    parts = [p for p in cleaned.split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        return None
    if not shape or any(d <= 0 for d in shape):
        return None
    return shape
