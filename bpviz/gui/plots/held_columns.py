"""Columns of a step-by-something image placed at their own steps, however unevenly those steps were taken.

An image's columns are all one width, but the steps that have a column's
values need not be one step apart: at the economy level histograms and unit
activity are taken every `detail_every` steps, under a budget at uneven
intervals, and a layer may be missing from some steps. Drawn one column per
such step and stretched over the span, a column stands over steps it was not
taken at (of histograms at steps 0, 1, 2 and 50, the one of step 2 over steps
25 to 38). Held instead, each stands from its own step until the next one.
"""

from __future__ import annotations

import numpy as np

# A longer span of steps is drawn a column per several steps: a heatmap is a few hundred pixels wide, and 4096
# columns made scrubbing a 10,000-step recording 10 ms slower for nothing on screen.
MAX_COLUMNS = 1024


def held_columns(steps: np.ndarray) -> np.ndarray:
    """Which row of the values each image column shows: a column per step from `steps[0]` to `steps[-1]` (one per
    several steps past MAX_COLUMNS), each the latest row taken at or before the column's middle. `steps` ascend."""
    span = int(steps[-1] - steps[0]) + 1
    count = min(span, MAX_COLUMNS)
    centres = steps[0] - 0.5 + (np.arange(count) + 0.5) * (span / count)
    return np.searchsorted(steps, centres, side="right") - 1
