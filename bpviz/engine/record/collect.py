"""Turn one step's device-side measurements into a plain `StepRecord` with a single host transfer.

All pieces are flattened into one float64 tensor per device, moved with one
`.cpu()`, and sliced back apart with numpy. Layers seen for the first time
are binned here, on the host, from a small sample once their range is known.
The collector only transfers and reshapes: judging what the numbers mean
(which units are dead, what is wrong) happens after it, on the plain record.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import torch

from bpviz.engine.config import Config
from bpviz.engine.distributed.context import local_shard
from bpviz.engine.observe import stats
from bpviz.engine.observe.amp import step_skipped
from bpviz.engine.observe.call_site import describe_site
from bpviz.engine.observe.catalog import LayerCatalog, LayerInfo
from bpviz.engine.observe.grad_norms import grad_norms, touched_rows
from bpviz.engine.observe.guard import MeasurementGuard
from bpviz.engine.observe.layer_kinds import RELU_FAMILY
from bpviz.engine.observe.pending import ActivationCall, PendingStep
from bpviz.engine.observe.update_tracking import ParameterSlices
from bpviz.engine.record.cost import StepClock
from bpviz.engine.record.records import ForwardPass, Histogram, LayerStep, ParamStep, StepRecord
from bpviz.engine.record.trained_forwards import keep_trained, trained_forwards


class CallSlots(NamedTuple):
    """Where one activation call's parts sit in the step's transfer (None: the call has no such part)."""

    scalars: int
    histogram: int | None
    sample: int | None
    units: int | None
    preact: int | None


class ParamSlots(NamedTuple):
    """Where the per-parameter norms sit in the step's transfer, with the parameter names of each."""

    names: list[str]  # every parameter; weight norms are in this order
    weights: int | None
    grad_names: list[str]
    grads: int | None
    update_names: list[str]
    updates: int | None


class _Batch:
    """Flattens tensors from one step into a single transfer and hands back numpy slices."""

    def __init__(self) -> None:
        self._parts: list[torch.Tensor] = []
        self._ends: list[int] = []  # where each part ends in the transfer

    def add(self, tensor: torch.Tensor) -> int:
        part = tensor if tensor.dim() == 1 else tensor.reshape(-1)
        self._parts.append(part)
        self._ends.append((self._ends[-1] if self._ends else 0) + part.numel())
        return len(self._parts) - 1

    def fetch(self) -> list[np.ndarray]:
        if not self._parts:
            return []
        parts = self._parts
        if len({p.device for p in parts}) > 1:
            parts = [p.cpu() for p in parts]
        host = _to_host(torch.cat(parts)).numpy().astype(np.float64)  # the step's one host sync
        starts = [0, *self._ends[:-1]]
        return [host[start:end] for start, end in zip(starts, self._ends)]


def on_gpu(tensor: torch.Tensor) -> bool:
    """Whether the step's measurements sit on a CUDA device (then they come back through pinned memory)."""
    return tensor.device.type == "cuda"


def _to_host(flat: torch.Tensor) -> torch.Tensor:
    """One copy to the host; from a GPU into pinned memory without blocking, then one wait for it."""
    if not on_gpu(flat):
        return flat.cpu()
    host = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True)
    host.copy_(flat, non_blocking=True)
    torch.cuda.current_stream(flat.device).synchronize()
    return host


def collect(
    catalog: LayerCatalog,
    slices: ParameterSlices,
    guard: MeasurementGuard,
    config: Config,
    pending: PendingStep,
    step: int,
    loss: torch.Tensor | float | None,
    *,
    softmax_before_cross_entropy: bool = False,
    detailed: bool = True,
    clock: StepClock | None = None,
) -> StepRecord:
    """Build the record of step `step` from what the hooks saw (settled: see observe/deferred.py).

    Dead units are marked on it afterwards. `detailed`: the step carries histograms and unit activity shares.
    `clock` times bpviz's own work on this step, stopped just before the record is made.
    """
    cfg = config
    trained = trained_forwards(pending)
    pending = keep_trained(pending)
    batch = _Batch()
    call_ids = [_add_call(batch, call) for call in pending.calls]
    grad_ids = [
        (g.layer, batch.add(g.scalars), batch.add(g.histogram) if g.histogram is not None else None, g.exact_norm)
        for g in pending.grads
    ]
    input_ids = [batch.add(f.input_sum.reshape(1)) if f.input_sum is not None else None for f in pending.forwards]
    code_ids = {name: batch.add(total.reshape(1)) for name, total in pending.code_inputs.items()}
    params = catalog.parameters()
    with torch.no_grad(), torch._C.DisableTorchFunction():
        names = list(params)
        # Like ||dW||, ||W|| of a large parameter is estimated from its strided slice: a full pass over
        # every weight each step would cost more than all the activation statistics together.
        # The optimizer hook measured those it updated; the rest (frozen, or no optimizer step) are measured here.
        unmeasured = [n for n in names if n not in pending.weight_norms]
        measured = torch._foreach_norm([slices.of(params[n]) for n in unmeasured]) if unmeasured else []
        weight_norms = {**pending.weight_norms, **dict(zip(unmeasured, measured))}
        late = [n for n, p in params.items() if n not in pending.param_grad_norms and p.grad is not None]
        fallback = dict(zip(late, grad_norms([local_shard(params[n].grad).detach() for n in late])))
        rows = {n: touched_rows(params[n].grad) for n in late if n in catalog.lookups}
    grad_norm_tensors = {**fallback, **pending.param_grad_norms}
    rows = {**rows, **pending.param_grad_rows}
    row_names = list(rows)
    row_id = batch.add(torch.stack([rows[n].float() for n in row_names])) if row_names else None
    weight_id = batch.add(torch.stack([weight_norms[n] for n in names])) if names else None
    pgrad_names = list(grad_norm_tensors)
    pgrad_id = batch.add(torch.stack([grad_norm_tensors[n] for n in pgrad_names])) if pgrad_names else None
    update_names = list(pending.update_norms)
    update_id = batch.add(torch.stack([pending.update_norms[n] for n in update_names])) if update_names else None
    loss_id = batch.add(loss.detach().reshape(-1)[:1]) if isinstance(loss, torch.Tensor) else None
    scale_id = batch.add(pending.grad_scale.reshape(1)) if pending.grad_scale is not None else None
    found_inf = pending.optimizer_found_inf
    inf_id = batch.add(torch.stack([f.reshape(()) for f in found_inf]).sum().reshape(1)) if found_inf else None
    bias_ids = {name: batch.add(bias.detach()) for name, bias in _producer_biases(catalog, pending).items()}
    before = pending.cut_probe_backward[1] if pending.cut_probe_backward is not None else None
    after = pending.cut_probe_step
    cut_id = batch.add(torch.stack([*before, *after])) if before and after and len(before) == len(after) else None

    host = batch.fetch()

    layers = _merge_calls(pending.calls, call_ids, host, cfg, catalog)
    _attach_gradients(layers, grad_ids, host, cfg)
    slots = ParamSlots(names, weight_id, pgrad_names, pgrad_id, update_names, update_id)
    param_steps = _param_steps(catalog, slices, layers, host, slots)
    if row_id is not None:
        param_steps = _with_touched_rows(param_steps, dict(zip(row_names, host[row_id].tolist())))
    forwards = [
        ForwardPass(
            f.grad_enabled,
            f.model_training,
            f.training_modules,
            f.eval_modules,
            input_nonfinite=fid is not None and not math.isfinite(host[fid][0]),
            backward=index in trained,
            output_layers=f.output_layers,
        )
        for index, (f, fid) in enumerate(zip(pending.forwards, input_ids))
    ]
    grad_scale = float(host[scale_id][0]) if scale_id is not None else None
    finite = not any(l.grad_nonfinite for l in layers.values()) and all(
        p.grad_norm is None or math.isfinite(p.grad_norm) for p in param_steps
    )
    skipped = step_skipped(grad_scale, bool(pending.update_norms), finite, inf_id is not None and host[inf_id][0] > 0)
    if loss_id is not None:
        loss_value = float(host[loss_id][0])
    else:
        loss_value = float(loss) if loss is not None else None
    ordered = list(layers.values())
    origin = nonfinite_origin(ordered, loss_value)
    input_from, input_measured = _code_made_input(origin, pending, code_ids, host)
    by_backward = [layers[n] for n in pending.backward_order if n in layers]
    overhead_s, step_s = clock.stop() if clock is not None else (None, None)
    return StepRecord(
        step=step,
        loss=loss_value,
        layers=ordered,
        params=param_steps,
        backward_order=list(pending.backward_order),
        forwards=forwards,
        nonfinite_origin=origin,
        nonfinite_input_from=input_from,
        nonfinite_input_measured=input_measured,
        nonfinite_grad_origin=next((l.name for l in by_backward if l.grad_nonfinite), None),
        softmax_before_cross_entropy=softmax_before_cross_entropy,
        producer_bias={name: host[i] for name, i in bias_ids.items()},
        unmeasured=list(guard.errors),
        grad_scale=grad_scale,
        grad_scaler_skipped=skipped,
        grad_norm_backward=_before_cut(param_steps, host[cut_id], grad_scale) if cut_id is not None else None,
        detailed=detailed,
        overhead_s=overhead_s,
        step_s=step_s,
    )


def _before_cut(params: list[ParamStep], probe: np.ndarray, grad_scale: float | None) -> float | None:
    """The parameters' total gradient norm as the backward left it: the one at the step times what the code
    between backward() and the step divided the gradients by (clip_grad_norm_ scales them all by one factor),
    from the probe slices' norms then and at the step. None when the probe cannot tell (no slice with a
    gradient) or no gradient reached the step. At the backward's end a GradScaler's gradients still carry its
    scale, which the step's do not."""
    norms = [p.grad_norm for p in params if p.grad_norm is not None]
    half = len(probe) // 2
    before, after = probe[:half] / (grad_scale or 1.0), probe[half:]
    usable = (after > 0) & np.isfinite(before) & np.isfinite(after)
    if not norms or not usable.any():
        return None
    total = math.sqrt(sum(norm * norm for norm in norms))
    factor = float(np.median(before[usable] / after[usable]))
    cut = factor if abs(factor - 1.0) > _UNCUT else 1.0
    return total * cut if math.isfinite(total) else None


_UNCUT = 1e-3  # a factor this close to 1 is rounding (the scale divided out), not a cut


def nonfinite_origin(ordered: list[LayerStep], loss: float | None) -> str | None:
    """The first layer, in forward order, whose output holds NaN/Inf that was not a mask.

    A padding or causal mask written as a layer of its own (`scores.masked_fill(pad, -inf)`) holds -inf on
    purpose, and the softmax after it turns that into zeros: its values are -inf and nothing else non-finite
    (their exact sum, hence the mean, is -inf; NaN or +inf would make it NaN or +inf), and the layer after it
    (for the last layer, the loss) is finite. Such a layer is no birth of NaN/Inf; the first one that is not
    passes its values on.
    """
    for index, layer in enumerate(ordered):
        if not layer.nonfinite:
            continue
        after = ordered[index + 1] if index + 1 < len(ordered) else None
        absorbed = not after.nonfinite if after is not None else loss is not None and math.isfinite(loss)
        if not (layer.mean == -math.inf and absorbed):
            return layer.name
    return None


def _producer_biases(catalog: LayerCatalog, pending: PendingStep) -> dict[str, torch.Tensor]:
    """The bias feeding each unit-tracked layer (catalog.feeding_bias), by that layer's name, kept per step to
    explain unit deaths."""
    names = list(dict.fromkeys(call.layer.name for call in pending.calls))
    biases = {}
    for call in pending.calls:
        units = call.unit_positive if call.unit_positive is not None else call.preact_max
        if units is None or call.layer.name in biases:
            continue
        bias = catalog.feeding_bias(names, call.layer.name, units.numel())
        if bias is not None and local_shard(bias) is bias:  # a shard's bias cannot explain every unit
            biases[call.layer.name] = bias
    return biases


def _add_call(batch: _Batch, call: ActivationCall) -> CallSlots:
    def optional(tensor: torch.Tensor | None) -> int | None:
        return batch.add(tensor) if tensor is not None else None

    return CallSlots(
        batch.add(call.scalars),
        optional(call.histogram),
        optional(call.sample),
        optional(call.unit_positive),
        optional(call.preact_max),
    )


def values_finite(squares: float, total: float) -> bool:
    """Whether a tensor holds no NaN/Inf, from its sum of squares and its sum.

    NaN or Inf make the sum of squares non-finite. So do huge finite values
    (|x| > ~1e19 overflows float32 squares), but then the plain sum stays
    finite: an infinite square sum with a finite sum is such an overflow.
    """
    return math.isfinite(squares) or (squares == math.inf and math.isfinite(total))


def call_finite(call: ActivationCall, row: list[float], preact: np.ndarray | None) -> bool:
    """Whether a call's tensor holds no NaN/Inf, exactly, from what its level measured over every value.

    The full level has the sum of squares and the sum (see values_finite); the economy level the sum,
    non-finite exactly for NaN/Inf (see stats.SUM_UNIT), or, for a ReLU,
    its input's per-unit maxima: NaN in the input stays NaN in the output, +inf stays +inf, -inf becomes 0.
    """
    if call.exact is stats.Exact.ALL:
        return values_finite(row[stats.SUMSQ], row[stats.SUM])
    if call.exact is stats.Exact.SUM or preact is None:
        return math.isfinite(row[stats.SUM])
    top = float(preact.max())  # NaN when any is NaN
    return top == top and top != math.inf


def _scalar_row(call: ActivationCall, row: list[float], preact: np.ndarray | None) -> list[float]:
    """A call's scalars; extremes read from its sample are NaN when the whole tensor holds NaN/Inf, which
    the sample may have missed, so that NaN/Inf stays exact at every level."""
    if call.exact is not stats.Exact.ALL and not call_finite(call, row, preact):
        row[stats.MIN] = row[stats.MAX] = math.nan
    return row


def _code_made_input(
    origin: str | None, pending: PendingStep, code_ids: dict[str, int], host: list[np.ndarray]
) -> tuple[str | None, bool]:
    """(where the code that made the NaN/Inf origin's input calls it, whether that input was measured to hold it).

    (None, False) when the origin's inputs were layers' outputs, or the code-made one was finite: then the
    origin made the NaN/Inf itself. The site without a measurement when it could not be taken."""
    if origin is None or origin not in pending.fed_by_code:
        return None, False
    site = describe_site(pending.fed_by_code[origin])
    index = code_ids.get(origin)
    if index is None:
        return site, False
    return (site, True) if not math.isfinite(host[index][0]) else (None, False)


def _merge_calls(calls, call_ids, host, cfg: Config, catalog: LayerCatalog) -> dict[str, LayerStep]:
    """One LayerStep per layer name, combining a layer's calls within the step (count-weighted moments)."""
    grouped: dict[str, list[tuple[ActivationCall, CallSlots]]] = {}
    for call, ids in zip(calls, call_ids):
        grouped.setdefault(call.layer.name, []).append((call, ids))
    layers: dict[str, LayerStep] = {}
    for order, (name, group) in enumerate(grouped.items()):
        info: LayerInfo = group[0][0].layer
        rows = [  # floats: cheaper than numpy
            _scalar_row(c, host[ids.scalars].tolist(), host[ids.preact] if ids.preact is not None else None)
            for c, ids in group
        ]
        total = float(sum(c.count for c, _ in group))
        sample_size = float(sum(c.sample_size for c, _ in group))
        mean = sum(r[stats.SUM] for r in rows) * stats.SUM_UNIT / total
        var = sum(r[stats.SUMSQ] for r in rows) / total - mean * mean
        lo, hi = min(r[stats.MIN] for r in rows), max(r[stats.MAX] for r in rows)
        layer = LayerStep(
            name=name,
            calls=len(group),
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
        if any(ids.histogram is not None or ids.sample is not None for _, ids in group):
            layer.histogram = _histogram(name, group, host, cfg, catalog, lo, hi)
        if any(ids.units is not None or ids.preact is not None for _, ids in group):
            _unit_stats(layer, group, host)
        layers[name] = layer
    return layers


def _histogram(name, group, host, cfg: Config, catalog: LayerCatalog, lo: float, hi: float) -> Histogram:
    """Sum the calls' histograms, scaled from their samples to the whole tensor so steps compare.

    This step's values are counted truthfully whatever the edges (outside them
    apart, never in the edge bins); the catalog then chooses the next step's
    edges, so a layer whose values left its range (revived, growing) gets edges that fit.
    """
    bins = cfg.histogram_bins
    kept = [host[ids.sample] for _, ids in group if ids.sample is not None]
    rlo, rhi = catalog.settle_range(name, lo, hi, np.concatenate(kept) if kept else np.empty(0))
    total = np.zeros(bins + 3)
    for call, ids in group:
        part = host[ids.histogram] if ids.histogram is not None else host_histogram(host[ids.sample], bins, rlo, rhi)
        if part.sum() > 0:
            total += part * (call.count / part.sum())
    catalog.advance_range(name, lo, hi, narrow=group[0][0].layer.bounds is None)
    return Histogram(
        total[:bins],
        rlo,
        rhi,
        below=float(total[stats.BELOW]),
        above=float(total[stats.ABOVE]),
        nonfinite=float(total[stats.NONFINITE]),
    )


def host_histogram(values: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """`stats.histogram` on the host, in the same layout, for values kept from a layer's first step."""
    finite = values[np.isfinite(values)]
    inside, _ = np.histogram(finite, bins=bins, range=(lo, hi))
    return np.concatenate([inside, [np.sum(finite < lo), np.sum(finite > hi), len(values) - len(finite)]])


def _unit_stats(layer: LayerStep, group, host) -> None:
    """Per-unit input maxima (every step) and activity (detailed steps); which units are dead is judged
    from these afterwards (dead_units.py)."""
    positive = preact = None
    positions = 0
    units = None  # the first call's unit count; calls with another one are left out
    for call, ids in group:
        part = host[ids.units] if ids.units is not None else None
        maxima = host[ids.preact] if ids.preact is not None else None
        count = len(part) if part is not None else len(maxima) if maxima is not None else None
        if count is None or units not in (None, count):
            continue
        units = count
        if part is not None:
            positive = part if positive is None else positive + part
            positions += call.positions_per_unit
        if maxima is not None:
            preact = maxima if preact is None else np.maximum(preact, maxima)
    layer.unit_preact_max = preact
    layer.units = units
    if positive is not None:
        if layer.family == RELU_FAMILY:  # such outputs are never negative; exact unless the batch was sampled
            layer.zero_fraction = float(1.0 - positive.sum() / (positions * len(positive)))
        layer.unit_activity = positive / max(1, positions)


def _attach_gradients(layers: dict[str, LayerStep], grad_ids, host, cfg: Config) -> None:
    sums: dict[str, float] = {}
    nonfinite: dict[str, bool] = {}
    sampled: set[str] = set()
    hists: dict[str, np.ndarray] = {}
    for name, scalar_id, hist_id, exact_norm in grad_ids:
        squared, total = host[scalar_id].tolist()
        sums[name] = sums.get(name, 0.0) + squared
        if not exact_norm:
            sampled.add(name)
        # the sum alone says NaN/Inf where the squares are estimated (see stats.SUM_UNIT); with exact
        # squares, both tell an overflow from Inf
        finite = values_finite(squared, total) if exact_norm else math.isfinite(total)
        nonfinite[name] = nonfinite.get(name, False) or not finite
        if hist_id is not None:
            hists[name] = hists.get(name, 0) + host[hist_id]
    lo, hi = cfg.grad_log10_range
    bins = cfg.histogram_bins
    for name, squared in sums.items():
        layer = layers.get(name)
        if layer is None:
            continue
        layer.grad_nonfinite = nonfinite[name]
        layer.grad_norm_sampled = name in sampled
        # +inf when the squares overflowed float32 though every value is finite (see grad_nonfinite)
        layer.grad_norm = float("nan") if layer.grad_nonfinite else math.sqrt(squared)
        if name not in hists:
            continue
        counts = np.asarray(hists[name], dtype=np.float64)
        layer.grad_histogram = Histogram(
            counts[:bins],
            lo,
            hi,
            log10=True,
            below=float(counts[stats.BELOW]),
            above=float(counts[stats.ABOVE]),
            nonfinite=float(counts[stats.NONFINITE]),
        )


def _with_touched_rows(steps: list[ParamStep], rows: dict[str, float]) -> list[ParamStep]:
    """Lookup tables count as large as the rows their gradient reached (see observe.grad_norms)."""
    return [
        replace(p, grad_numel=int(rows[p.name]) * (p.numel // max(1, p.shape_rows))) if p.name in rows else p
        for p in steps
    ]


def _param_steps(
    catalog: LayerCatalog, slices: ParameterSlices, layers: dict[str, LayerStep], host, slots: ParamSlots
) -> list[ParamStep]:
    def values(names: list[str], slot: int | None) -> dict:
        return dict(zip(names, host[slot])) if slot is not None else {}

    weights = values(slots.names, slots.weights)
    grads = values(slots.grad_names, slots.grads)
    updates = values(slots.update_names, slots.updates)
    owners = catalog.param_owners(tuple(layers), tuple(slots.names))
    steps = []
    per_layer: dict[str, list[ParamStep]] = {}
    for name in slots.names:
        param = catalog.parameters()[name]
        scale = slices.scale(param)
        item = ParamStep(
            name=name,
            layer=owners.get(name),
            grad_norm=float(grads[name]) if name in grads else None,
            weight_norm=float(weights.get(name, 0.0)) * scale,
            update_norm=float(updates[name]) * scale if name in updates else None,
            numel=local_shard(param).numel(),  # this rank's shard under FSDP2, like the norms
            shape_rows=param.shape[0] if param.dim() else 1,
        )
        steps.append(item)
        if item.layer is not None:
            per_layer.setdefault(item.layer, []).append(item)
    for layer_name, items in per_layer.items():
        layer_param_totals(layers[layer_name], items)
    return steps


def layer_param_totals(layer: LayerStep, items: list[ParamStep]) -> None:
    """A layer's ||dL/dW||, ||W|| and update ratio over its own parameters' norms (again when those change)."""
    grads_sq = [p.grad_norm**2 for p in items if p.grad_norm is not None]
    layer.param_grad_norm = math.sqrt(sum(grads_sq)) if grads_sq else None
    layer.weight_norm = math.sqrt(sum(p.weight_norm**2 for p in items))
    upd_sq = [p.update_norm**2 for p in items if p.update_norm is not None]
    layer.update_ratio = math.sqrt(sum(upd_sq)) / layer.weight_norm if upd_sq and layer.weight_norm > 0 else None
