"""Turn one step's device-side measurements into a plain `StepRecord` with a single host transfer.

All pieces are flattened into one float64 tensor per device, moved with one
`.cpu()`, and sliced back apart with numpy. Layers seen for the first time
are binned here, on the host, from a small sample once their range is known.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from bpviz.engine.observe import stats
from bpviz.engine.config import Config
from bpviz.engine.observe.pending import ActivationCall, LayerInfo, PendingStep
from bpviz.engine.observe.probe import Probe
from bpviz.engine.record.records import ForwardPass, Histogram, LayerStep, ParamStep, StepRecord
from bpviz.engine.diagnosis.unit_forensics import producers
from bpviz.engine.distributed.context import local_shard
from bpviz.engine.record.dead_units import DeadUnitTracker


class _Batch:
    """Flattens tensors from one step into a single transfer and hands back numpy slices."""

    def __init__(self) -> None:
        self._parts: list[torch.Tensor] = []

    def add(self, tensor: torch.Tensor) -> int:
        self._parts.append(tensor if tensor.dim() == 1 else tensor.reshape(-1))
        return len(self._parts) - 1

    def fetch(self) -> list[np.ndarray]:
        if not self._parts:
            return []
        parts = self._parts
        if len({p.device for p in parts}) > 1:
            parts = [p.cpu() for p in parts]
        host = torch.cat(parts).cpu().numpy().astype(np.float64)  # the step's one host sync
        ends = np.cumsum([p.numel() for p in parts]).tolist()
        return [host[end - p.numel() : end] for p, end in zip(parts, ends)]


def collect(
    probe: Probe, pending: PendingStep, step: int, loss: torch.Tensor | float | None, tracker: DeadUnitTracker
) -> StepRecord:
    """Build the record of step `step` from what the hooks saw."""
    cfg = probe.config
    batch = _Batch()
    call_ids = [_add_call(batch, call) for call in pending.calls]
    grad_ids = [(g.layer, batch.add(g.scalars), batch.add(g.histogram)) for g in pending.grads]
    input_ids = [batch.add(f.input_sum.reshape(1)) if f.input_sum is not None else None for f in pending.forwards]
    params = probe.parameters()
    with torch.no_grad(), torch._C.DisableTorchFunction():
        names = list(params)
        # Like ||dW||, ||W|| of a large parameter is estimated from its strided slice: a full pass over
        # every weight each step would cost more than all the activation statistics together.
        # The optimizer hook measured those it updated; the rest (frozen, or no optimizer step) are measured here.
        unmeasured = [n for n in names if n not in pending.weight_norms]
        measured = torch._foreach_norm([probe.slices.of(params[n]) for n in unmeasured]) if unmeasured else []
        weight_norms = {**pending.weight_norms, **dict(zip(unmeasured, measured))}
        fallback = {
            n: torch.linalg.vector_norm(local_shard(p.grad).detach())
            for n, p in params.items()
            if n not in pending.param_grad_norms and p.grad is not None
        }
    grad_norm_tensors = {**fallback, **pending.param_grad_norms}
    weight_id = batch.add(torch.stack([weight_norms[n] for n in names])) if names else None
    pgrad_names = list(grad_norm_tensors)
    pgrad_id = batch.add(torch.stack([grad_norm_tensors[n] for n in pgrad_names])) if pgrad_names else None
    update_names = list(pending.update_norms)
    update_id = batch.add(torch.stack([pending.update_norms[n] for n in update_names])) if update_names else None
    loss_id = batch.add(loss.detach().reshape(-1)[:1]) if isinstance(loss, torch.Tensor) else None
    bias_ids = {name: batch.add(bias.detach()) for name, bias in _producer_biases(probe, pending).items()}

    host = batch.fetch()

    layers = _merge_calls(pending.calls, call_ids, host, cfg, probe, step, tracker)
    _attach_gradients(layers, grad_ids, host, cfg)
    param_steps = _param_steps(probe, layers, names, host, weight_id, pgrad_names, pgrad_id, update_names, update_id)
    forwards = [
        ForwardPass(
            f.grad_enabled,
            f.model_training,
            f.training_modules,
            f.eval_modules,
            input_nonfinite=fid is not None and not math.isfinite(host[fid][0]),
        )
        for f, fid in zip(pending.forwards, input_ids)
    ]
    if loss_id is not None:
        loss_value = float(host[loss_id][0])
    else:
        loss_value = float(loss) if loss is not None else None
    ordered = list(layers.values())
    by_backward = [layers[n] for n in pending.backward_order if n in layers]
    return StepRecord(
        step=step,
        loss=loss_value,
        layers=ordered,
        params=param_steps,
        backward_order=list(pending.backward_order),
        forwards=forwards,
        nonfinite_origin=next((l.name for l in ordered if l.nonfinite), None),
        nonfinite_grad_origin=next((l.name for l in by_backward if l.grad_nonfinite), None),
        producer_bias={name: host[i] for name, i in bias_ids.items()},
        unmeasured=list(probe.internal_errors),
    )


def _producer_biases(probe: Probe, pending: PendingStep) -> dict[str, torch.Tensor]:
    """The bias of the Linear/Conv feeding each unit-tracked layer, kept per step to explain unit deaths."""
    names = list(dict.fromkeys(call.layer.name for call in pending.calls))
    biases = {}
    for call in pending.calls:
        if call.unit_positive is None or call.layer.name in biases:
            continue
        feeding = producers(names, probe, call.layer.name, call.unit_positive.numel())
        if feeding:
            bias = probe.own_parameters(probe.layers[feeding[-1]].module_name).get("bias")
            if bias is not None and local_shard(bias) is bias:  # a shard's bias cannot explain every unit
                biases[feeding[-1]] = bias
    return biases


def _add_call(batch: _Batch, call: ActivationCall) -> tuple[int, int | None, int | None, int | None, int | None]:
    scalars = batch.add(call.scalars)
    hist = batch.add(call.histogram) if call.histogram is not None else None
    sample = batch.add(call.sample) if call.sample is not None else None
    units = batch.add(call.unit_positive) if call.unit_positive is not None else None
    preact = batch.add(call.preact_max) if call.preact_max is not None else None
    return scalars, hist, sample, units, preact


def _merge_calls(calls, call_ids, host, cfg: Config, probe: Probe, step: int, tracker) -> dict[str, LayerStep]:
    """One LayerStep per layer name, combining a layer's calls within the step (count-weighted moments)."""
    grouped: dict[str, list[tuple[ActivationCall, tuple]]] = {}
    for call, ids in zip(calls, call_ids):
        grouped.setdefault(call.layer.name, []).append((call, ids))
    layers: dict[str, LayerStep] = {}
    for order, (name, group) in enumerate(grouped.items()):
        info: LayerInfo = group[0][0].layer
        rows = [host[ids[0]].tolist() for _, ids in group]  # plain floats: cheaper than numpy scalars
        total = float(sum(c.count for c, _ in group))
        sample_size = float(sum(c.sample_size for c, _ in group))
        mean = sum(r[stats.SUM] for r in rows) / total
        var = sum(r[stats.SUMSQ] for r in rows) / total - mean * mean
        lo, hi = min(r[stats.MIN] for r in rows), max(r[stats.MAX] for r in rows)
        layer = LayerStep(
            name=name,
            type=info.type,
            shape=group[-1][0].shape,
            family=info.family,
            order=order,
            mean=mean,
            std=math.sqrt(max(var, 0.0)) if math.isfinite(var) else float("nan"),
            min=lo,
            max=hi,
            zero_fraction=1.0 - sum(r[stats.SAMPLE_NONZERO] for r in rows) / sample_size,
            # from the extremes only: a sum of huge finite values can overflow float32, a min/max cannot
            nonfinite=not (math.isfinite(lo) and math.isfinite(hi)),
        )
        if info.bounds is not None:
            layer.saturated_fraction = sum(r[stats.SAMPLE_SATURATED] for r in rows) / sample_size
        layer.histogram = _histogram(name, group, host, cfg, probe, lo, hi)
        if group[0][0].unit_positive is not None:
            _unit_stats(layer, group, host, step, tracker)
        layers[name] = layer
    return layers


def _histogram(name, group, host, cfg: Config, probe: Probe, lo: float, hi: float) -> Histogram:
    """Sum the calls' histograms, scaled from their samples to the whole tensor so steps compare.

    Then choose the next step's edges: this step's values are counted truthfully
    either way (outside the edges apart, never in the edge bins), but a layer
    whose values left its range (a revived or a growing layer) gets edges that fit them.
    """
    bins = cfg.histogram_bins
    if name not in probe.hist_ranges:  # first sight: this step's extremes, or its sample's finite ones under NaN/Inf
        if not (math.isfinite(lo) and math.isfinite(hi)):
            kept = np.concatenate([host[ids[2]] for _, ids in group if ids[2] is not None] or [np.empty(0)])
            finite = kept[np.isfinite(kept)]
            lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (lo, hi)
        probe.hist_ranges[name] = choose_range(lo, hi)
    rlo, rhi = probe.hist_ranges[name]
    total = np.zeros(bins + 3)
    for call, ids in group:
        part = host[ids[1]] if ids[1] is not None else host_histogram(host[ids[2]], bins, rlo, rhi)
        if part.sum() > 0:
            total += part * (call.count / part.sum())
    bounded = group[0][0].layer.bounds is not None
    probe.hist_ranges[name] = next_range((rlo, rhi), lo, hi, narrow=not bounded)
    return Histogram(total[:bins], rlo, rhi, below=float(total[stats.BELOW]), above=float(total[stats.ABOVE]),
                     nonfinite=float(total[stats.NONFINITE]))


def host_histogram(values: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """`stats.histogram` on the host, in the same layout, for values kept from a layer's first step."""
    finite = values[np.isfinite(values)]
    inside, _ = np.histogram(finite, bins=bins, range=(lo, hi))
    return np.concatenate([inside, [np.sum(finite < lo), np.sum(finite > hi), len(values) - len(finite)]])


def choose_range(lo: float, hi: float) -> tuple[float, float]:
    """Histogram edges for values from `lo` to `hi`, padded so some later growth stays in view."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (-1.0, 1.0)
    width = hi - lo
    if width < 1e-12:
        pad = max(abs(hi), 1.0) * 0.5
        return (lo - pad, hi + pad)
    pad = 0.25 * width
    new_lo = 0.0 if lo >= 0.0 else lo - pad
    return (new_lo, hi + pad)


NARROW_BELOW = 1 / 32  # values spanning less than this share of the range: narrow it (they sit in one or two bins)


def next_range(current: tuple[float, float], lo: float, hi: float, narrow: bool) -> tuple[float, float]:
    """The edges for a layer's next step, given this step's exact min `lo` and max `hi`.

    Kept while the values fit (so steps line up); widened to cover both the old
    range and the values when they leave it; with `narrow`, fitted to the values
    when they shrank to a sliver of it. NaN/Inf extremes keep the range: the
    non-finite values are counted apart and the finite ones are unknown here.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return current
    rlo, rhi = current
    if lo < rlo or hi > rhi:
        wide_lo, wide_hi = choose_range(min(lo, rlo), max(hi, rhi))
        return (min(wide_lo, rlo), max(wide_hi, rhi))
    if narrow and (hi - lo) < NARROW_BELOW * (rhi - rlo):
        fitted = choose_range(lo, hi)
        if fitted[1] - fitted[0] < rhi - rlo:
            return fitted
    return current


def _unit_stats(layer: LayerStep, group, host, step: int, tracker: DeadUnitTracker) -> None:
    positive = preact = None
    positions = 0
    for call, ids in group:
        part = host[ids[3]]
        if positive is not None and len(part) != len(positive):
            continue  # a call with another unit count; keep the first shape's units
        positive = part if positive is None else positive + part
        positions += call.positions_per_unit
        if ids[4] is not None and len(host[ids[4]]) == len(part):
            preact = host[ids[4]] if preact is None else np.maximum(preact, host[ids[4]])
    layer.unit_preact_max = preact
    # A ReLU-family unit's output is positive exactly where its input is: the input's maximum, read over
    # the whole batch, says whether it fired; the positive counts may come from part of the batch.
    dead = tracker.update(layer.name, step, preact > 0 if preact is not None else positive > 0)
    if layer.family == "relu":  # such outputs are never negative; exact unless the batch was sampled
        layer.zero_fraction = float(1.0 - positive.sum() / (positions * len(positive)))
    layer.units = len(positive)
    layer.dead_units = len(dead)
    layer.dead_unit_ids = dead
    layer.unit_activity = positive / max(1, positions)


def _attach_gradients(layers: dict[str, LayerStep], grad_ids, host, cfg: Config) -> None:
    sums: dict[str, float] = {}
    nonfinite: dict[str, bool] = {}
    hists: dict[str, np.ndarray] = {}
    for name, scalar_id, hist_id in grad_ids:
        squared, total = host[scalar_id].tolist()
        sums[name] = sums.get(name, 0.0) + squared
        # see stats.grad_scalars_and_histogram: finite squares, or overflowed squares of finite values
        finite = math.isfinite(squared) or (squared == math.inf and math.isfinite(total))
        nonfinite[name] = nonfinite.get(name, False) or not finite
        hists[name] = hists.get(name, 0) + host[hist_id]
    lo, hi = cfg.grad_log10_range
    bins = cfg.histogram_bins
    for name, squared in sums.items():
        layer = layers.get(name)
        if layer is None:
            continue
        layer.grad_nonfinite = nonfinite[name]
        # +inf when the squares overflowed float32 though every value is finite (see grad_nonfinite)
        layer.grad_norm = float("nan") if layer.grad_nonfinite else math.sqrt(squared)
        counts = np.asarray(hists[name], dtype=np.float64)
        layer.grad_histogram = Histogram(counts[:bins], lo, hi, log10=True, below=float(counts[stats.BELOW]),
                                         above=float(counts[stats.ABOVE]), nonfinite=float(counts[stats.NONFINITE]))


def _param_steps(probe: Probe, layers, names, host, weight_id, pgrad_names, pgrad_id, update_names, update_id):
    weights = dict(zip(names, host[weight_id])) if weight_id is not None else {}
    grads = dict(zip(pgrad_names, host[pgrad_id])) if pgrad_id is not None else {}
    updates = dict(zip(update_names, host[update_id])) if update_id is not None else {}
    owners = _param_owners(probe, layers, names)
    steps = []
    per_layer: dict[str, list[ParamStep]] = {}
    for name in names:
        param = probe.parameters()[name]
        scale = probe.slices.scale(param)
        item = ParamStep(
            name=name,
            layer=owners.get(name),
            grad_norm=float(grads[name]) if name in grads else None,
            weight_norm=float(weights.get(name, 0.0)) * scale,
            update_norm=float(updates[name]) * scale if name in updates else None,
            numel=local_shard(param).numel(),  # this rank's shard under FSDP2, like the norms
        )
        steps.append(item)
        if item.layer is not None:
            per_layer.setdefault(item.layer, []).append(item)
    for layer_name, items in per_layer.items():
        layer = layers[layer_name]
        grads_sq = [p.grad_norm**2 for p in items if p.grad_norm is not None]
        layer.param_grad_norm = math.sqrt(sum(grads_sq)) if grads_sq else None
        layer.weight_norm = math.sqrt(sum(p.weight_norm**2 for p in items))
        upd_sq = [p.update_norm**2 for p in items if p.update_norm is not None]
        if upd_sq and layer.weight_norm > 0:
            layer.update_ratio = math.sqrt(sum(upd_sq)) / layer.weight_norm
    return steps


def _param_owners(probe: Probe, layers: dict[str, LayerStep], names: list[str]) -> dict[str, str]:
    """Each parameter's layer: the nearest enclosing module that was observed as a layer (first call site)."""
    by_module: dict[str, str] = {}
    for layer in layers.values():
        info = probe.layers[layer.name]
        if not info.functional:
            by_module.setdefault(info.module_name, layer.name)
    owners = {}
    for name in names:
        parts = name.split(".")[:-1]
        while True:
            owner = by_module.get(".".join(parts))
            if owner is not None:
                owners[name] = owner
                break
            if not parts:
                break
            parts.pop()
    return owners
