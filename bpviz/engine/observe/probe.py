"""Hooks that watch a model's layers as guests: they measure, never change, and leave no trace on detach.

A *layer* is a module call that observed no other layer inside it (a leaf
module, or a container such as MultiheadAttention whose children are never
called), plus every functional activation (`F.relu`, `torch.tanh`,
`x.relu_()`, ...) called directly by a container's forward. Functional calls
inside a leaf module's own forward belong to that module (nn.ReLU calls
F.relu), so every activation is counted exactly once.

Everything measured stays on the device in a `PendingStep` (see pending.py)
until the collector moves it to the host in one transfer. What outlives a
step (which layers exist, their parameters and histogram edges) is kept in
the `LayerCatalog`; a failing measurement goes to the `MeasurementGuard`.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from bpviz.engine.config import Config
from bpviz.engine.observe import deferred, stats
from bpviz.engine.observe.catalog import LayerCatalog, LayerInfo
from bpviz.engine.observe.guard import MeasurementGuard
from bpviz.engine.observe.layer_graph import GraphRecorder
from bpviz.engine.observe.layer_kinds import (
    MODE_SENSITIVE,
    RELU_FAMILY,
    bounds_of,
    functional_families,
    functional_name,
    module_family,
)
from bpviz.engine.observe.pending import ActivationCall, ForwardFacts, GradCall, PendingStep, Stash
from bpviz.engine.observe.update_tracking import ParameterSlices, UpdateTracker

# Modules after which a 3-dim activation is (N, C, L) rather than (N, L, F).
_CHANNEL_FIRST_MAKERS = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)
_FEATURE_LAST_MAKERS = (nn.Linear, nn.LayerNorm, nn.Embedding, nn.RNNBase, nn.MultiheadAttention, nn.Flatten)


@dataclass
class _Frame:
    module: nn.Module
    name: str
    structural_leaf: bool
    had_sublayer: bool = False
    activation_out: torch.Tensor | None = None  # output of the last functional activation inside a leaf
    activation_family: str | None = None
    preact_max: torch.Tensor | None = None  # per-unit maximum of a ReLU module's input
    input_fns: list | None = None  # autograd nodes of the inputs, while recording the layer graph


class _FunctionalActivations(TorchFunctionMode):
    """Sees every torch function call during a watched forward and reports the activations."""

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self._probe = probe

    def __torch_function__(self, func, types, args=(), kwargs=None):
        family = self._probe.functional.get(func)
        if family is None:
            return func(*args, **(kwargs or {}))
        return self._probe._call_functional(func, family, args, kwargs or {})


class Probe:
    """Attaches to one model; measures every layer on every forward with grad enabled."""

    def __init__(self, model: nn.Module, config: Config, catalog: LayerCatalog, guard: MeasurementGuard) -> None:
        self.model = model
        self.config = config
        self.catalog = catalog
        self.guard = guard
        self.pending = PendingStep()
        self.failed_layer: str | None = None  # innermost layer whose forward raised, most recent failure
        self.failed_layer_type: str | None = None  # its module class
        self.last_layer: str | None = None  # last layer entered (forward) or reached (backward)
        self._names = {module: name for name, module in model.named_modules()}
        self._mode_modules = [(n, m) for n, m in model.named_modules() if isinstance(m, MODE_SENSITIVE)]
        self._handles: list = []
        self._stack: list[_Frame] = []
        self._occurrence: dict[str, int] = {}
        self._observing = False
        self._channel_first_3d = False
        self._mode: _FunctionalActivations | None = None
        self._mode_entered = False
        self._failed_exc: BaseException | None = None
        self._forward_mark = self.pending.mark()  # where the step stood when the running root forward began
        self.functional: dict[object, str] = {}  # the functional activations to catch, read on attach
        self.slices = ParameterSlices(config.update_sample)  # what ||W|| and ||dW|| are estimated from
        self._updates = UpdateTracker(catalog.parameters(), self.slices, lambda: self.pending, guard)
        # Called with ("forward", layer, output) and ("backward", layer, gradient) when set: step-into pauses here.
        self.listener: Callable[[str, str, torch.Tensor], None] | None = None
        # Set for one training forward to record the data flow between layers.
        self.graph: GraphRecorder | None = None
        # Functional layers whose activation is replaced (a remedy): layer name -> function of the input.
        self.substitutions: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        # Whether the coming step is a detailed one (histograms, per-unit activity shares); the Watcher's
        # schedule sets it before each step. The other statistics are taken on every step.
        self.detailed = True
        self.exact = config.level == "full"  # moments and extremes over every value, not a sample
        self._stash_limit = config.stash_limit_mb * 2**20

    # ----- lifecycle -----
    def attach(self) -> None:
        """Register every hook; a second attach is a no-op."""
        if self._handles:
            return
        self._mode = _FunctionalActivations(self)
        self.functional = functional_families()
        for module in self.model.modules():
            self._handles.append(module.register_forward_pre_hook(self._pre_hook))
            self._handles.append(module.register_forward_hook(self._post_hook, always_call=True))
        self._handles.extend(self._updates.attach())

    def detach(self) -> None:
        """Remove every hook so the model trains exactly as before."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.pending.release_hooks()
        self._exit_mode()
        self._stack.clear()

    def adopt(self, module: nn.Module, name: str) -> None:
        """Watch a module put into the model while attached (a remedy swapping an activation)."""
        self._names[module] = name
        if self._handles:
            self._handles.append(module.register_forward_pre_hook(self._pre_hook))
            self._handles.append(module.register_forward_hook(self._post_hook, always_call=True))

    def take_pending(self) -> PendingStep:
        """Hand over what was seen since the last call and start a new step; its gradient hooks are done."""
        pending, self.pending = self.pending, PendingStep()
        pending.release_hooks()
        return pending

    # ----- forward -----
    def _pre_hook(self, module: nn.Module, args) -> None:
        started = time.perf_counter()
        self._enter(module, args)
        self.pending.hook_seconds += time.perf_counter() - started

    def _enter(self, module: nn.Module, args) -> None:
        if not self._stack:
            self._begin_forward(args)
        else:
            self._stack[-1].had_sublayer = True
        frame = _Frame(module, self._names.get(module, type(module).__name__), not module._modules)
        if self.graph is not None and self._observing:
            frame.input_fns = [a.grad_fn for a in args if isinstance(a, torch.Tensor)]
        if self._observing and frame.structural_leaf and args and isinstance(args[0], torch.Tensor):
            name = self._names.get(module)
            info = self.catalog.layers.get(name) if name is not None else None
            if module_family(module) == RELU_FAMILY or (info is not None and info.tracks_units):
                frame.preact_max = self._unit_max(args[0])
        self._stack.append(frame)

    def _post_hook(self, module: nn.Module, args, output) -> None:
        if not self._stack or self._stack[-1].module is not module:
            return  # a hook registered mid-forward, or a module outside the watched tree
        frame = self._stack.pop()
        try:
            exc = sys.exc_info()[1]
            if exc is not None:
                if exc is not self._failed_exc:  # the innermost module sees it first
                    self._failed_exc = exc
                    self.failed_layer = frame.name or type(module).__name__
                    self.failed_layer_type = type(module).__name__
                if not self._stack:  # a forward that raised is no part of the step, even if the user goes on
                    self.pending.rollback(self._forward_mark)
                return
            if self._observing and not frame.had_sublayer:
                self._observe_module(frame, output)
        finally:
            if not self._stack:
                self._exit_mode()

    def _begin_forward(self, args) -> None:
        self._observing = torch.is_grad_enabled()
        self._occurrence.clear()
        self._channel_first_3d = False
        self._failed_exc = None
        self.failed_layer = None
        self.failed_layer_type = None
        training = tuple(n for n, m in self._mode_modules if m.training)
        evaluating = tuple(n for n, m in self._mode_modules if not m.training)
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        input_sum = None
        if self._observing and first is not None and first.is_floating_point():
            input_sum = first.detach().sum()  # NaN/Inf anywhere make the sum non-finite
        self._forward_mark = self.pending.mark()
        facts = ForwardFacts(self._observing, self.model.training, training, evaluating, input_sum)
        self.pending.add_forward(facts, self.config.calls_per_layer_step)
        if self._observing:
            self._mode.__enter__()
            self._mode_entered = True

    def _exit_mode(self) -> None:
        if self._mode_entered:
            self._mode_entered = False
            self._mode.__exit__(None, None, None)

    def _observe_module(self, frame: _Frame, output) -> None:
        tensor = _primary_tensor(output)
        module = frame.module
        if tensor is None:
            return
        family = module_family(module)
        if family is None and frame.activation_out is tensor:
            family = frame.activation_family
        name = self._next_name(frame.name or type(module).__name__)
        if self.graph is not None and frame.input_fns is not None:
            self.graph.inputs(name, frame.input_fns)
        type_name = type(module).__name__
        self._observe(name, type_name, family, bounds_of(family, module), tensor, frame.name, False, frame.preact_max)
        if isinstance(module, _CHANNEL_FIRST_MAKERS):
            self._channel_first_3d = True
        elif isinstance(module, _FEATURE_LAST_MAKERS):
            self._channel_first_3d = False

    def _call_functional(self, func, family: str, args, kwargs):
        if not self._stack:
            return func(*args, **kwargs)  # outside the watched model (e.g. in the loss)
        frame = self._stack[-1]
        if frame.structural_leaf:  # it belongs to the leaf module calling it
            out = func(*args, **kwargs)
            frame.activation_out, frame.activation_family = out, family
            return out
        frame.had_sublayer = True
        fname = functional_name(func)
        name = self._next_name(f"{frame.name}.{fname}()" if frame.name else f"{fname}()")
        first = args[0] if args else None
        if self.graph is not None and isinstance(first, torch.Tensor):
            self.graph.inputs(name, [first.grad_fn])
        preact = self._unit_max(first) if family == RELU_FAMILY and isinstance(first, torch.Tensor) else None
        replacement = self.substitutions.get(name)
        out = replacement(first) if replacement is not None else func(*args, **kwargs)
        if isinstance(out, torch.Tensor):
            bounds = bounds_of(family, None)
            if family == "hardtanh":
                lo = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
                hi = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
                bounds = (float(lo), float(hi))
            type_name = functional_name(func) if replacement is None else replacement.__name__
            self._observe(name, type_name, family, bounds, out, frame.name, True, preact)
        return out

    def _next_name(self, base: str) -> str:
        """`base` for a layer's first call in a forward, `base#2`, `base#3`... for later ones."""
        n = self._occurrence.get(base, 0) + 1
        self._occurrence[base] = n
        return base if n == 1 else f"{base}#{n}"

    def _unit_max(self, x: torch.Tensor) -> torch.Tensor:
        """Per-unit maximum of a ReLU's input, read before an in-place activation overwrites it."""
        with torch._C.DisableTorchFunction():
            return stats.unit_max(x.detach(), self._channel_first(x))

    def _channel_first(self, x: torch.Tensor) -> bool:
        return x.dim() >= 4 or (x.dim() == 3 and self._channel_first_3d)

    def _observe(
        self,
        name: str,
        type_name: str,
        family: str | None,
        bounds: tuple[float, float] | None,
        tensor: torch.Tensor,
        module_name: str,
        functional: bool,
        preact: torch.Tensor | None,
    ) -> None:
        if not tensor.is_floating_point() or tensor.numel() == 0 or tensor.layout != torch.strided:
            return
        started = time.perf_counter()
        self.last_layer = name
        info = self.catalog.note(name, type_name, family, module_name, functional, bounds)
        limit = self.config.calls_per_layer_step
        if not self.pending.admit(name, limit):
            self.guard.note(f"{name}: called more than {limit} times in one step (forwards without w.step()?); "
                            "the rest was not measured")
            return
        with torch._C.DisableTorchFunction():
            with self.guard.catch(name):
                self._measure(info, tensor, preact)
            if tensor.requires_grad:
                self.pending.hook_gradient(tensor, name, self._grad_hook(name))
        if self.graph is not None:
            self.graph.output(name, tensor)
        self.pending.hook_seconds += time.perf_counter() - started
        if self.listener is not None:
            self.listener("forward", name, tensor)

    def _measure(self, info: LayerInfo, tensor: torch.Tensor, preact: torch.Tensor | None) -> None:
        cfg = self.config
        x = tensor.detach()
        if x.dtype != torch.float32:
            x = x.float()
        unit_positive, positions = None, 0
        # Activity shares on detailed steps; whether units fired comes from `preact` on every step.
        if info.tracks_units and x.dim() >= 1 and (self.detailed or preact is None):
            channel_first = self._channel_first(x)
            counted = stats.batch_sample(x, cfg.unit_activity_sample)
            unit_positive = stats.unit_positive_counts(counted, channel_first, info.family == RELU_FAMILY)
            positions = counted.numel() // max(1, stats.units_of(x, channel_first))
        hist_range = self.catalog.histogram_range(info) if self.detailed else None
        stash = Stash(
            x,
            x._version,
            (info.name, "forward"),
            hist_range=hist_range,
            keep_sample=self.detailed and hist_range is None,  # first sight: bin once the range is known
        )
        call = ActivationCall(info, tuple(x.shape), x.numel(), None, None, None, unit_positive, positions, preact, 0)
        call.stash = stash
        if not self._defer(stash):
            deferred.settle_activations([call], cfg, self.exact)
            self._after_measuring_now(call)
        self.pending.calls.append(call)

    def _defer(self, stash: Stash) -> bool:
        """Leave the statistics to the end of the step: the tensor is known not to change in place, and fits."""
        if not self.catalog.defers(stash.key) or self.pending.stashed_bytes + stash.nbytes > self._stash_limit:
            return False
        self.pending.stashed_bytes += stash.nbytes
        return True

    def _after_measuring_now(self, item: ActivationCall | GradCall) -> None:
        """Keep the stash of a layer seen for the first time, only to learn at the end of the step
        whether its tensor changes in place after the hook (see deferred.py); drop it otherwise."""
        if self.catalog.needs_check(item.stash.key):
            item.stash.measured = True
        else:
            item.stash = None

    # ----- backward -----
    def _grad_hook(self, name: str):
        def hook(grad: torch.Tensor) -> None:
            started = time.perf_counter()
            pending = self.pending
            with torch._C.DisableTorchFunction(), self.guard.catch(name):
                g = grad.detach()
                if g.dtype != torch.float32:
                    g = g.float()
                hist_range = self.config.grad_log10_range if self.detailed else None
                call = GradCall(name, None, None, Stash(g, g._version, (name, "backward"), hist_range=hist_range))
                if not self._defer(call.stash):
                    deferred.settle_gradients([call], self.config)
                    self._after_measuring_now(call)
                pending.grads.append(call)
            if name not in pending.backward_order:
                pending.backward_order.append(name)
            self.last_layer = name
            pending.hook_seconds += time.perf_counter() - started
            if self.listener is not None:
                self.listener("backward", name, grad)

        return hook

def _primary_tensor(output) -> torch.Tensor | None:
    """The tensor that stands for a module's output: itself, or the first floating tensor in a tuple/list/dict."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _primary_tensor(item)
            if found is not None and found.is_floating_point():
                return found
    return None
