"""A share as a percentage that never rounds onto 0% or 100% when it is neither.

"zero 100.0%" over a layer three of whose 64 units still fire, or "255 of
256 units (100%) are dead", reads as the whole layer: the difference between
all and almost all is what a user is looking at. A share strictly between 0
and 1 whose rounding would print either end prints ">99.9%" or "<0.1%" instead.
"""

from __future__ import annotations


def percent_text(share: float, decimals: int = 1) -> str:
    """100 * `share` with `decimals` digits and a % sign; ">99.9%" / "<0.1%" (at that precision) for a share
    that is neither 0 nor 1 but would round to one of them; non-finite shares as themselves ("nan%")."""
    pct = 100.0 * share
    half = 0.5 * 10.0**-decimals
    if 0.0 < share < 1.0:
        if pct >= 100.0 - half:
            return f">{100.0 - 2 * half:.{decimals}f}%"
        if pct < half:
            return f"<{2 * half:.{decimals}f}%"
    return f"{pct:.{decimals}f}%"
