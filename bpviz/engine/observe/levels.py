"""How much to measure: named cost levels, and which steps are detailed, within an optional budget.

Always on, every step, at every level: NaN/Inf (exact, forward and
backward, with the layer it first appeared in), whether each unit fired
(exact: a dead-unit count never misses), gradient and parameter norms,
mode facts and the loss. A *detailed* step adds histograms and per-unit
activity shares; they change slowly, so the economy level takes them every
`Config.detail_every` steps. The full level takes everything every step and
its moments and extremes over every value rather than a sample.

With a budget (bpviz's share of step time), detailed steps are spaced from
bpviz's own measured cost (see record/cost.py) so the share stays under it:
evenly, from running estimates of a detailed and a plain step, and never
while the run's share so far, counted over every step including the first
(always detailed, to learn its cost), would rise above the budget with one
more detailed step. The always-on checks are never dropped for it.
"""

from __future__ import annotations

import math

from bpviz.engine.config import Config

LEVELS = ("economy", "full")
MAX_SPACING = 1000  # steps between detailed steps when even the always-on checks use up the budget
_SMOOTHING = 0.3  # weight of the newest step in the running cost estimates
_MARGIN = 0.8  # aim under the budget, since the estimates trail the costs


def check_level(level: str) -> str:
    """`level` when it names a level; a ValueError listing the levels otherwise."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    return level


class DetailSchedule:
    """Decides before each step whether it is detailed, from the level, the budget and the measured costs."""

    def __init__(self, config: Config) -> None:
        self.level = check_level(config.level)
        self.every = max(1, config.detail_every)
        self.budget = config.budget
        if self.budget is not None and not 0 < self.budget < 1:
            raise ValueError(f"budget is a share of step time between 0 and 1, got {self.budget!r}")
        self._since: int | None = None  # steps since the last detailed one; None before any step
        self._detailed: float | None = None  # running estimate of bpviz's seconds on a detailed step
        self._plain: float | None = None  # ... on a plain step
        self._step: float | None = None  # ... of a step's wall time
        self._latest: float | None = None  # bpviz's seconds on the latest detailed step
        self._spent = 0.0  # bpviz's seconds over every step observed so far
        self._wall = 0.0  # those steps' wall seconds

    def next_is_detailed(self) -> bool:
        """Whether the coming step takes histograms and activity shares."""
        if self._since is None:
            return True
        spacing = self.spacing()
        if self._since + 1 < spacing:
            return False
        return spacing == MAX_SPACING or self._within_budget()

    def _within_budget(self) -> bool:
        """Whether one more detailed step keeps the run's share so far under the budget (no budget: always)."""
        if self.budget is None or self._detailed is None or self._step is None:
            return True
        cost = max(self._detailed, self._latest)  # the running estimate trails a cost that grew
        extra = max(0.0, cost - (self._plain or 0.0))  # a detailed step is longer than a plain one by this
        return self._spent + cost <= self.budget * (self._wall + self._step + extra)

    def spacing(self) -> int:
        """Steps from one detailed step to the next."""
        if self.budget is None:
            return 1 if self.level == "full" else self.every
        if self._detailed is None or self._step is None:
            return 1
        if self._plain is None:
            return 2  # measure a plain step next
        allowed = self.budget * _MARGIN * self._step
        if self._detailed <= allowed:
            return 1
        if self._plain >= allowed:
            return MAX_SPACING
        # k steps, one of them detailed: (detailed + (k - 1) plain) / (k step) <= allowed / step
        needed = (self._detailed - self._plain) / (allowed - self._plain)
        return min(MAX_SPACING, max(1, math.ceil(needed)))

    def observe(self, detailed: bool, overhead_s: float | None, step_s: float | None) -> None:
        """Learn from the step just recorded."""
        self._since = 0 if detailed else (self._since or 0) + 1
        if overhead_s is not None and step_s is not None:
            self._spent += overhead_s
            self._wall += step_s
        if overhead_s is not None:
            if detailed:
                self._detailed = _smooth(self._detailed, overhead_s)
                self._latest = overhead_s
            else:
                self._plain = _smooth(self._plain, overhead_s)
        if step_s is not None:
            self._step = _smooth(self._step, step_s)


def _smooth(previous: float | None, value: float) -> float:
    return value if previous is None else previous + _SMOOTHING * (value - previous)
