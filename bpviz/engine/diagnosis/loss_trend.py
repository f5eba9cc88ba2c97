"""Whether the model's own loss is getting worse: what turns a large gradient from a matter of scale into a problem.

A loss summed over the batch (a VAE's, many seq2seq setups') has gradients
thousands of times larger than the same loss averaged, and trains just as
well; a diverging run has a loss that climbs as its gradients grow. The
gradient rules ask this module which of the two a run is doing.
"""

from __future__ import annotations

import math
import statistics

from bpviz.engine.record.history import History
from bpviz.engine.record.records import StepRecord


def loss_rose(history: History, record: StepRecord, window: int) -> bool | None:
    """True when this step's loss is above the median of the `window` steps before it; None when unknown.

    The median, not the last step, so one noisy mini-batch neither raises nor hides a climb.
    """
    if record.loss is None:
        return None
    if not math.isfinite(record.loss):
        return True
    earlier = [
        past.loss
        for past in list(history.records)[-window - 1 : -1]
        if past.step < record.step and past.loss is not None and math.isfinite(past.loss)
    ]
    if not earlier:
        return None
    return record.loss > statistics.median(earlier)
