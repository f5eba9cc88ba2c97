"""Plain per-step data the engine hands to every consumer.

Nothing here holds a tensor: a record is made after the step's single host
sync, so the GUI thread, the CLI and a JSON writer can keep and read it
without touching torch or the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bpviz.engine.record.rank_table import RankTable


@dataclass(frozen=True)
class Histogram:
    """Bin counts over [lo, hi], and how many values fell outside it or were NaN/Inf.

    A layer keeps its edges from step to step while its values fit them, and
    gets new, wider ones when they leave (see `catalog.next_range`): a view
    that lines steps up rebins onto common edges. Counts are estimates for the
    whole tensor (scaled from a sample), so `total` is its element count.
    """

    counts: np.ndarray  # float64, one count per bin: finite values inside [lo, hi]
    lo: float
    hi: float
    log10: bool = False  # True: bins are over log10(|value|) (used for gradients; zeros count as below)
    below: float = 0.0  # finite values under lo
    above: float = 0.0  # finite values over hi
    nonfinite: float = 0.0  # NaN or Inf values

    @property
    def total(self) -> float:
        """Every value counted: inside the edges, outside them, and NaN/Inf."""
        return float(self.counts.sum()) + self.below + self.above + self.nonfinite

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, len(self.counts) + 1)


@dataclass
class LayerStep:
    """One layer (a leaf-module call site or a functional activation call) at one training step."""

    name: str
    type: str  # module class name ("Linear") or functional name ("relu")
    shape: tuple[int, ...]  # output shape of the last call in the step
    family: str | None  # activation family: "relu", "sigmoid", "tanh", "hardtanh", "gelu", "softmax", ... or None
    order: int  # forward execution order within the step, 0-based
    calls: int = 1  # calls merged into this layer in the step (a cell run once per time step: one per step)
    mean: float = 0.0
    std: float = 0.0
    min: float = 0.0
    max: float = 0.0
    zero_fraction: float = 0.0
    saturated_fraction: float | None = None  # only for bounded activations (sigmoid/tanh/hardtanh)
    nonfinite: bool = False
    histogram: Histogram | None = None
    units: int | None = None  # ReLU-family layers only
    dead_units: int | None = None  # units with no positive value over the recent window
    dead_unit_ids: np.ndarray | None = None  # int64 indices of those units
    dead_since: np.ndarray | None = None  # int64, per unit of dead_unit_ids: the first step of its silent streak
    unit_activity: np.ndarray | None = None  # per unit: share of this step's positions that were positive
    unit_preact_max: np.ndarray | None = None  # per unit: largest input to the activation this step
    # L2 norm of d(loss)/d(output) over every output and call together (an LSTM's output, h_n and c_n);
    # None when no gradient reached any of them
    grad_norm: float | None = None
    # grad_norm was estimated from a strided sample (the economy level, a gradient larger than its sample): a
    # 0.0 then says the sample held no nonzero value, not that no gradient flows
    grad_norm_sampled: bool = False
    grad_histogram: Histogram | None = None  # over log10 |grad|, of the same gradients
    grad_nonfinite: bool = False  # NaN/Inf in any of them
    param_grad_norm: float | None = None  # L2 norm over the layer's own parameters' gradients
    weight_norm: float | None = None
    update_ratio: float | None = None  # ||dW|| / ||W|| of this step's optimizer update


@dataclass(frozen=True)
class ParamStep:
    """One parameter tensor at one step."""

    name: str  # qualified parameter name, e.g. "fc1.weight"
    layer: str | None  # the layer (leaf module call site) that owns it
    grad_norm: float | None
    weight_norm: float  # estimated from a strided slice for parameters over Config.update_sample elements
    update_norm: float | None  # ||dW|| of this step's update (estimated likewise), None when no update was seen
    numel: int = 0  # element count, for per-element gradient sizes
    shape_rows: int = 1  # size of the first dimension (a lookup table's rows)
    grad_numel: int | None = None  # elements the gradient reached, when fewer than all (a lookup table's touched rows)


@dataclass(frozen=True)
class ForwardPass:
    """Mode facts about one call of the watched model's forward."""

    grad_enabled: bool
    model_training: bool
    training_modules: tuple[str, ...]  # modules with dropout or BatchNorm in training mode
    eval_modules: tuple[str, ...]  # modules with dropout or BatchNorm in eval mode
    input_nonfinite: bool = False
    backward: bool = True  # a gradient flowed back to it: a training forward, not a validation with grad enabled
    output_layers: tuple[str, ...] = ()  # layers whose output the model returned


@dataclass
class StepRecord:
    """Everything observed during one training step (forward, loss, backward, update)."""

    step: int  # 0-based
    loss: float | None
    layers: list[LayerStep]  # in forward execution order
    params: list[ParamStep] = field(default_factory=list)
    backward_order: list[str] = field(default_factory=list)  # layers in the order autograd reached them
    forwards: list[ForwardPass] = field(default_factory=list)  # every forward since the previous step
    nonfinite_origin: str | None = None  # first layer (forward order) whose output held NaN/Inf
    # where the user's code called nonfinite_origin with an input that code made, not a layer ("UNet.forward,
    # unet.py:41"), when that input held the NaN/Inf (or, in runs recorded before it was measured, may have);
    # None when its inputs were layers' outputs, or that input was finite: the layer itself made it
    nonfinite_input_from: str | None = None
    nonfinite_input_measured: bool = False  # that input was measured and held it: it was born in that code
    nonfinite_grad_origin: str | None = None  # first layer (backward order) whose gradient held NaN/Inf
    softmax_before_cross_entropy: bool = False
    # per ReLU-family layer, by its name, the bias of the layer feeding its units (catalog.producers)
    producer_bias: dict[str, np.ndarray] = field(default_factory=dict)
    unmeasured: list[str] = field(default_factory=list)  # what bpviz failed to measure so far, and why
    ranks: RankTable | None = None  # every rank's statistics of this step, when several ranks run
    detailed: bool = True  # histograms and unit activity shares were taken (every step at the full level)
    overhead_s: float | None = None  # bpviz's own time on this step: its hooks and the collection (host clock)
    step_s: float | None = None  # wall time since the previous step's record (the first: since attach)

    @property
    def overhead_share(self) -> float | None:
        """bpviz's share of this step's wall time."""
        if self.overhead_s is None or not self.step_s:
            return None
        return self.overhead_s / self.step_s

    grad_scale: float | None = None  # GradScaler's loss scale in this step's backward (divided out)
    grad_scaler_skipped: bool = False  # GradScaler skipped the optimizer step: the scaled gradients overflowed
    # the parameters' total gradient norm as the backward left it, before the code ahead of the optimizer step
    # (clip_grad_norm_) scaled the gradients; the params' grad norms are the ones the step used. None where it
    # could not be told: several ranks (their averaging changes the gradients too), no optimizer step
    grad_norm_backward: float | None = None

    @property
    def output_layers(self) -> set[str]:
        """Layers whose output a trained forward of this step returned as the model's output."""
        return {name for f in self.forwards if f.backward for name in f.output_layers}

    def layer(self, name: str) -> LayerStep:
        """The layer called `name`; KeyError names the known layers when it is missing."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r}; layers are {[l.name for l in self.layers]}")
