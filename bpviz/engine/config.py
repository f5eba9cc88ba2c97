"""Every threshold the engine uses, in one documented object.

Thresholds live here, not inside the rules, so a user (or the GUI) can tune
them in one place and the README can list them with their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    """Observation settings and diagnosis thresholds; the defaults are documented in the README."""

    # --- observation ---
    level: str = "economy"  # "economy": cheap enough to leave on; "full": every statistic every step (see README)
    detail_every: int = 10  # economy: histograms and unit activity shares every this many steps
    budget: float | None = None  # bpviz's share of step time to stay under, by spacing the detailed steps
    stash_limit_mb: int = 512  # tensors held for end-of-forward statistics; beyond this a layer is measured in its hook
    histogram_bins: int = 64
    histogram_sample: int = 4096  # at most this many values of a tensor feed its histogram, zero and saturation shares
    update_sample: int = 4096  # ||dW|| of larger parameters is estimated from this many strided elements
    # at most this many values (whole samples) of a ReLU-family output feed unit activity
    unit_activity_sample: int = 262144
    first_sight_sample: int = 4096  # values kept from a layer's first step, binned once its range is known
    grad_log10_range: tuple[float, float] = (-12.0, 4.0)  # gradient histograms bin log10 |g| over this range
    dead_window: int = 3  # steps a unit must stay silent (no positive output on any sample) to count as dead
    history_steps: int = 2000  # full records kept in memory; older ones are dropped (scalars are kept)
    calls_per_layer_step: int = 32  # calls of one layer measured per step; more (forwards without a step) are counted

    # --- dead_relu ---
    dead_warning: float = 0.10  # share of a ReLU-family layer's units that are dead
    dead_error: float = 0.50

    # --- saturated_activation ---
    saturation_margin: float = 0.01  # within this share of the output range of a bound counts as saturated
    saturation_warning: float = 0.50  # share of a layer's outputs that are saturated

    # --- vanishing_gradient (on per-element RMS of weight gradients, input side vs output side) ---
    # Only when the updates are small too: an optimizer with per-parameter step sizes (Adam) makes up for
    # small gradients, so they are no problem there.
    vanishing_ratio: float = 1e-3  # earliest layer's RMS below this share of the largest later layer's: warning
    vanishing_ratio_error: float = 1e-6  # ... error; any layer this far below the model's largest: warning

    # --- exploding_gradient (relative to the run itself: a summed loss has large gradients and is fine) ---
    exploding_ratio: float = 1e3  # earliest layer's RMS above this multiple of the last layer's: warning
    exploding_ratio_error: float = 1e6  # ... error
    exploding_growth: float = 1e2  # norm above this multiple of its recent median: warning (error if the loss rose)
    exploding_window: int = 10  # steps the recent median (of gradient norms and losses) is taken over

    # --- torch.distributed (rank_divergence) ---
    combine_ranks: bool = True  # gather every rank's statistics each step (one collective) when several ranks run
    rank_divergence_ratio: float = 4.0  # a rank's output scale or gradient norm this many times off the others'
