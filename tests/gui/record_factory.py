"""Hand-made StepRecords and Histories for view tests: no torch, no engine, exact numbers."""

from __future__ import annotations

import numpy as np

from bpviz.engine.record.history import History
from bpviz.engine.record.records import Histogram, LayerStep, StepRecord

BINS = 8
ACT_RANGE = (-2.0, 2.0)
GRAD_RANGE = (-12.0, 4.0)


def histogram(counts, lo: float = ACT_RANGE[0], hi: float = ACT_RANGE[1], log10: bool = False) -> Histogram:
    """A Histogram over fixed edges."""
    return Histogram(counts=np.asarray(counts, dtype=np.float64), lo=lo, hi=hi, log10=log10)


def layer(
    name: str,
    order: int,
    *,
    family: str | None = None,
    grad_norm: float | None = 1.0,
    units: int | None = None,
    dead: list[int] | None = None,
    activity=None,
    step: int = 0,
    grad_nonfinite: bool = False,
    saturated: float | None = None,
    **fields,
) -> LayerStep:
    """A LayerStep with deterministic histograms (counts depend on `step` and `order`) unless given."""
    counts = fields.pop("histogram", None)
    grad_counts = fields.pop("grad_histogram", None)
    if counts is None:
        counts = [(step + order + b) % 5 for b in range(BINS)]
    if grad_counts is None:
        grad_counts = [(2 * step + b) % 7 for b in range(BINS)]
    relu = units is not None
    if relu and activity is None:
        activity = np.full(units, 0.5)
        for unit in dead or []:
            activity[unit] = 0.0
    return LayerStep(
        name=name,
        type=fields.pop("type", "ReLU" if family == "relu" else "Linear"),
        shape=fields.pop("shape", (4, units or 3)),
        family=family,
        order=order,
        mean=fields.pop("mean", 0.1 * order),
        std=fields.pop("std", 1.0),
        zero_fraction=fields.pop("zero_fraction", 0.25 if relu else 0.0),
        saturated_fraction=saturated,
        histogram=histogram(counts) if not isinstance(counts, Histogram) else counts,
        grad_histogram=(
            histogram(grad_counts, *GRAD_RANGE, log10=True) if not isinstance(grad_counts, Histogram) else grad_counts
        ),
        units=units,
        dead_units=len(dead or []) if relu else None,
        dead_unit_ids=np.asarray(dead or [], dtype=np.int64) if relu else None,
        unit_activity=np.asarray(activity, dtype=np.float64) if relu else None,
        grad_norm=grad_norm,
        grad_nonfinite=grad_nonfinite,
        **fields,
    )


def record(step: int, layers: list[LayerStep], loss: float | None = None, **fields) -> StepRecord:
    """A StepRecord; loss defaults to 1/(step+1)."""
    return StepRecord(step=step, loss=1.0 / (step + 1) if loss is None else loss, layers=layers, **fields)


def small_net(step: int, dead_after: int = 3) -> list[LayerStep]:
    """fc1 → relu1 (4 units, unit 2 dead from `dead_after` on) → fc2 → sigmoid."""
    dead = [2] if step >= dead_after else []
    return [
        layer("fc1", 0, grad_norm=0.01 * (step + 1), step=step),
        layer("relu1", 1, family="relu", units=4, dead=dead, grad_norm=None if step == 0 else 0.1, step=step),
        layer("fc2", 2, grad_norm=1.0, step=step),
        layer("sigmoid", 3, family="sigmoid", grad_norm=2.0, saturated=0.5, step=step),
    ]


def small_history(steps: int = 5, max_steps: int = 2000) -> History:
    """A History of `small_net` records, steps 0..steps-1."""
    history = History(max_steps=max_steps)
    for step in range(steps):
        history.append(record(step, small_net(step)))
    return history


def synthetic_history(steps: int = 50, hidden: int = 5, units: int = 32, seed: int = 0) -> History:
    """A realistic-looking run for looking at the views: Linear/ReLU pairs whose units die over time,
    a sigmoid head, gradients shrinking toward the input, a falling loss and validation every 10 steps."""
    rng = np.random.default_rng(seed)
    history = History()
    bins = 64
    edges = np.linspace(-3.0, 3.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    gedges = np.linspace(-12.0, 4.0, bins + 1)
    gcentres = (gedges[:-1] + gedges[1:]) / 2
    names: list[tuple[str, str | None]] = [("input_proj", None)]
    for i in range(1, hidden + 1):
        names += [(f"blocks.{i}.linear", None), (f"blocks.{i}.relu", "relu")]
    names.append(("head.sigmoid", "sigmoid"))
    depth = len(names)
    for step in range(steps):
        layers = []
        for order, (name, family) in enumerate(names):
            shrink = 10.0 ** (-(depth - order) * 0.45 - step * 0.01)
            grad_norm = float(shrink * (1 + 0.2 * rng.standard_normal() ** 2))
            mean = 0.3 * np.sin(order + step / 10)
            std = 1.0 / (1 + 0.02 * step) + 0.1 * order / depth
            act = np.exp(-0.5 * ((centres - mean) / std) ** 2) * 4000
            grad_centre = np.log10(grad_norm) - 2
            grad = np.exp(-0.5 * ((gcentres - grad_centre) / 0.8) ** 2) * 4000
            fields: dict = {}
            if family == "relu":
                dying = int(min(units, step * (order / depth) * 0.6))
                dead = list(range(0, units, 3))[: dying // 3 + 1] if step > 5 else []
                activity = rng.uniform(0.2, 0.9, units) * np.exp(-step / 80)
                activity[dead] = 0.0
                act = act * (centres > 0)
                act[np.argmin(np.abs(centres))] += 3000 + 80 * step
                fields.update(units=units, dead=dead, activity=activity, zero_fraction=0.5 + 0.005 * step)
            elif family == "sigmoid":
                sat = min(0.9, 0.1 + step * 0.015)
                fields.update(saturated=sat)
            if name == "blocks.3.linear" and 30 <= step < 33:
                fields.update(grad_nonfinite=True)
                grad_norm = float("nan")
            layers.append(
                layer(
                    name,
                    order,
                    family=family,
                    grad_norm=grad_norm,
                    step=step,
                    mean=float(mean),
                    std=float(std),
                    histogram=histogram(np.round(act), -3.0, 3.0),
                    grad_histogram=histogram(np.round(grad), -12.0, 4.0, log10=True),
                    type="ReLU" if family == "relu" else ("Sigmoid" if family else "Linear"),
                    **fields,
                )
            )
        loss = 2.3 * np.exp(-step / 20) + 0.2 + 0.05 * rng.standard_normal()
        history.append(record(step, layers, loss=float(loss)))
        if step % 10 == 9:
            history.add_validation(step, {"loss": float(loss * 1.1), "accuracy": 1 - loss / 3})
    return history
