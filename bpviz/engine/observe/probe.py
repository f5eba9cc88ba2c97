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
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from bpviz.engine.config import Config
from bpviz.engine.observe import deferred, guest_hooks, stats
from bpviz.engine.observe.amp import ScaleFinder, unscale_late, unscaled
from bpviz.engine.observe.call_site import call_site, functional_call_site
from bpviz.engine.observe.catalog import LayerCatalog, LayerInfo
from bpviz.engine.observe.checkpointing import CheckpointPass, checkpoint_pass
from bpviz.engine.observe.dispatch_cost import dispatch_costs
from bpviz.engine.observe.guard import MeasurementGuard
from bpviz.engine.observe.layer_graph import GraphRecorder
from bpviz.engine.observe.layer_kinds import (
    CLIPPED_RELU_TYPES,
    RELU_FAMILY,
    bounds_of,
    functional_families,
    functional_name,
    mode_candidate,
    mode_sensitive,
    module_family,
)
from bpviz.engine.observe.parametrized import watched_modules
from bpviz.engine.observe.pending import ActivationCall, ForwardFacts, GradCall, PendingStep, Stash
from bpviz.engine.observe.training_pass import TrainingPasses
from bpviz.engine.observe.unit_axis import UnitAxis
from bpviz.engine.observe.update_tracking import ParameterSlices, UpdateTracker

_DEFER_MAX_BYTES = 1 << 19  # larger outputs are measured in their hook (see Probe._defer)
_PRODUCER_DEPTH = 3  # autograd nodes searched back from an activation's input made by code (Probe._producer)
_PRODUCER_WIDTH = 32  # and at most this many at each depth


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
    caller: FrameType | None = None  # the Python frame running this module call
    fed_by_code: bool = False  # an input was made by the code between layers, not by a layer (see _made_by_code)
    code_input: torch.Tensor | None = None  # then the inputs' sum, NaN when one held NaN/Inf (see _code_input)
    outer_exc: BaseException | None = None  # an exception being handled when the call began (not its failure)


class _FunctionalActivations(TorchFunctionMode):
    """Sees every torch function call during a watched forward and reports the activations."""

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self._probe = probe

    def __torch_function__(self, func, types, args=(), kwargs=None):
        probe = self._probe
        probe.pending.hook_seconds += probe.costs.mode_call  # routing this call through Python (see dispatch_cost)
        if probe.pending.watching:  # the code between layers (`logits.div_(t)`) may change a layer's output
            probe.pending.look_for_changes()
        family = probe.functional.get(func)
        if family is None:
            return func(*args, **(kwargs or {}))
        return probe._call_functional(func, family, args, kwargs or {})


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
        # the model itself (an nn.LSTM watched alone) by its class: its name is empty
        self._mode_modules = [(n or type(m).__name__, m) for n, m in model.named_modules() if mode_candidate(m)]
        self._handles: list = []
        self._stack: list[_Frame] = []
        self._occurrence: dict[str, int] = {}
        # (layer base name, call site, the layer feeding a functional activation) -> its name in this forward
        self._site_names: dict[tuple, str] = {}
        self._observing = False
        self._unit_axis = UnitAxis()  # where an activation's units are, from the layer that produced it
        self._mode: _FunctionalActivations | None = None
        self._mode_entered = False
        # Whether a functional activation was ever called inside the model. Until one is, the function mode,
        # which routes every torch call of the forward through Python, is entered on detailed steps only
        # (the first step is one): a model of activation modules alone never pays for it after that, and
        # one that calls a functional activation keeps the mode on every step from the first it was seen.
        self._functional_seen = False
        self._failed_exc: BaseException | None = None
        self._forward_index = 0  # the current root forward's index in pending.forwards
        self._grads_only = False  # a checkpoint's recomputation: its values were measured in the forward pass
        self._outputs: list[tuple[weakref.ref, str]] = []  # each observed layer's output in this forward
        self._output_of: dict[int, tuple[weakref.ref, str]] = {}  # the same by id: which layer made a tensor
        # by id of its autograd node (kept, so that the id stays its own): which layer's output it made, and when
        self._node_of: dict[int, tuple[object, str, int]] = {}
        # by id: the layers' outputs and the model's inputs in this forward, with their version then (an in-place
        # `out += identity` after the layer is code of its own)
        self._made: dict[int, tuple[weakref.ref, int]] = {}
        self.amp = ScaleFinder()  # the GradScaler whose scale is divided out of every gradient
        self._forward_mark = self.pending.mark()  # where the step stood when the running root forward began
        self.functional: dict[object, str] = {}  # the functional activations to catch, read on attach
        self.slices = ParameterSlices(config.update_sample)  # what ||W|| and ||dW|| are estimated from
        self.training_passes: TrainingPasses | None = None  # which backward passes count (training_pass.py)
        self.updates = UpdateTracker(
            catalog.parameters(), self.slices, lambda: self.pending, guard, catalog.lookups, self._scaler_at_step
        )
        # Called with ("forward", layer, output) and ("backward", layer, gradient) when set: step-into pauses here.
        self.listener: Callable[[str, str, torch.Tensor], None] | None = None
        # Called with ("forward", layer) as a layer is entered (its parent again once it returns) and ("backward",
        # layer) as its gradient arrives, when set: the experiment process keeps where it is for the window to read
        # after a crash (engine/session/position.py). No tensor, no sync: a memmove.
        self.position: Callable[[str, str | None], None] | None = None
        # Set for one training forward to record the data flow between layers.
        self.graph: GraphRecorder | None = None
        # Functional layers whose activation is replaced (a remedy): layer name -> function of the input.
        self.substitutions: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        # Whether the coming step is a detailed one (histograms, per-unit activity shares); the Watcher's
        # schedule sets it before each step. The other statistics are taken on every step.
        self.detailed = True
        self.exact = config.level == "full"  # moments and extremes over every value, not a sample
        self._stash_limit = config.stash_limit_mb * 2**20
        self.costs = dispatch_costs()  # torch's time calling into the hooks, counted as bpviz's own
        self._excluded = 0.0  # seconds of the user's own code run inside the hook being timed

    # ----- lifecycle -----
    def attach(self) -> None:
        """Register every hook; a second attach is a no-op. A copy of the model is not watched (guest_hooks.py)."""
        if self._handles:
            return
        self._mode = _FunctionalActivations(self)
        self.functional = functional_families()
        self.training_passes = TrainingPasses(self.model.parameters)
        for module in watched_modules(self.model):
            self._handles.extend(guest_hooks.place(module, self._pre_hook, self._post_hook))
        self._handles.extend(self.updates.attach())

    def detach(self) -> None:
        """Remove every hook so the model trains exactly as before."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.pending.release_hooks()
        self.training_passes = None
        self._exit_mode()
        self._stack.clear()

    def adopt(self, module: nn.Module, name: str) -> None:
        """Watch a module put into the model while attached (a remedy swapping an activation)."""
        self._names[module] = name
        if self._handles:
            self._handles.extend(guest_hooks.place(module, self._pre_hook, self._post_hook))

    def take_pending(self) -> PendingStep:
        """Hand over what was seen since the last call and start a new step; its gradient hooks are done."""
        pending, self.pending = self.pending, PendingStep()
        self._unit_axis.reset()
        pending.release_hooks()
        if not pending.grads and pending.other_grads:  # no pass trained the parameters (an input's gradient,
            # an adversarial example's): the passes there were are the step's, as when every pass counted
            pending.grads, pending.backward_order = pending.other_grads, pending.other_order
        with self.guard.catch("gradients"):  # a backward that raised ended without settling them
            deferred.settle_backward(pending, self.config, self.catalog, self.guard, self.exact)
        if pending.unscale_late:  # the GradScaler was found at the optimizer step, after this backward
            unscale_late(pending.grads, pending.grad_unscale)
        return pending

    # ----- forward -----
    def _pre_hook(self, module: nn.Module, args, kwargs) -> None:
        started = time.perf_counter()
        if self.pending.watching:
            self.pending.look_for_changes()
        with torch._C.DisableTorchFunction():  # bpviz's own tensor calls need not pass through its mode
            self._enter(module, args, kwargs, sys._getframe(1))
        self._charge(started, self.costs.module_call)

    def _charge(self, started: float, dispatch: float) -> None:
        """Count the time since `started` as bpviz's own, less the user's code run meanwhile, plus `dispatch`."""
        self.pending.hook_seconds += time.perf_counter() - started - self._excluded + dispatch
        self._excluded = 0.0

    def _user_call(self, run, *args, **kwargs):
        """Run the user's own code (an activation, a remedy, a step-into pause) off bpviz's clock."""
        started = time.perf_counter()
        try:
            return run(*args, **kwargs)
        finally:
            self._excluded += time.perf_counter() - started

    def _enter(self, module: nn.Module, args, kwargs, caller: FrameType) -> None:
        if self._stack and not _runs_inside(caller, self._stack[-1].caller):
            self._abandon_forward()
        if not self._stack:
            self._begin_forward((*args, *kwargs.values()))  # model(pixel_values=x): the input is a keyword
        else:
            self._stack[-1].had_sublayer = True
        frame = _Frame(module, self._names.get(module, type(module).__name__), _is_leaf(module))
        frame.caller, frame.outer_exc = caller, sys.exc_info()[1]
        measuring = self._observing and not self._grads_only
        if self.graph is not None and measuring:
            frame.input_fns = [a.grad_fn for a in args if isinstance(a, torch.Tensor)]
        if measuring and frame.structural_leaf:
            made = self._made_by_code(args)
            frame.fed_by_code = bool(made)
            if made:
                frame.code_input = self._code_input(made, frame.name)
        if measuring and frame.structural_leaf and args and isinstance(args[0], torch.Tensor):
            name = self._names.get(module)
            info = self.catalog.layers.get(name) if name is not None else None
            if module_family(module) == RELU_FAMILY or (info is not None and info.tracks_units):
                frame.preact_max = self._unit_max(args[0], frame.name)
        self._stack.append(frame)
        if self.position is not None:
            self.position("forward", frame.name)

    def _post_hook(self, module: nn.Module, args, output) -> None:
        if not self._stack or self._stack[-1].module is not module:
            return  # a hook registered mid-forward, or a module outside the watched tree
        started = time.perf_counter()
        if self.pending.watching:
            self.pending.look_for_changes()
        frame = self._stack.pop()
        if self.position is not None:
            self.position("forward", self._stack[-1].name if self._stack else None)
        try:
            with torch._C.DisableTorchFunction():  # bpviz's own tensor calls need not pass through its mode
                self._observe_return(frame, module, args, output)
        finally:
            if not self._stack:
                self._exit_mode()
            self._charge(started, 0.0)

    def _observe_return(self, frame: _Frame, module: nn.Module, args, output) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and exc is not frame.outer_exc:  # a step retried inside `except` is no failure
            if exc is not self._failed_exc:  # the innermost module sees it first
                self._failed_exc = exc
                self.failed_layer = frame.name or type(module).__name__
                self.failed_layer_type = type(module).__name__
            if not self._stack:  # a forward that raised is no part of the step, even if the user goes on
                self.pending.rollback(self._forward_mark)
            return
        if self._observing and not frame.had_sublayer:
            self._observe_module(frame, args, output)
        if not self._stack and self._observing and not self._grads_only:
            self._note_outputs(output)
            # settled now, before the backward needs the memory the outputs hold (see deferred.py)
            deferred.settle(self.pending, self.config, self.catalog, self.guard, self.exact)
        elif not self._stack and self._grads_only:  # a recomputation's nodes are not held past it
            self._output_of.clear()
            self._node_of.clear()

    def _abandon_forward(self) -> None:
        """Drop the frames of a forward that never returned.

        A KeyboardInterrupt skips torch's always-call forward hooks, so the
        interrupted calls stay on the stack and the function mode stays on;
        the next module call that does not run inside them starts afresh.
        """
        self._stack.clear()
        self._exit_mode()

    def _note_outputs(self, output) -> None:
        """Remember which layers' outputs the model returned: they feed the loss, not another layer."""
        returned = {id(t) for t in _floating_tensors(output)}
        names = tuple(name for ref, name in self._outputs if id(ref()) in returned and ref() is not None)
        if names and self.pending.forwards:
            self.pending.forwards[-1].output_layers = names
        self._outputs.clear()
        self._output_of.clear()
        self._node_of.clear()
        self._made.clear()

    def _made_by_code(self, args) -> list[torch.Tensor]:
        """The floating-point inputs that are neither the model's input nor a layer's output of this forward (nor
        a view of one), as it was made: the code between layers made them (a sum, a concatenation, a division, an
        in-place `out += identity`). A NaN/Inf first seen in this layer's output may have been born in that code
        (nan_or_inf.py). By identity and version counter (a view shares its base's), on the host: no tensor is
        read."""
        made, found = self._made, []
        for a in args:
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                base = a._base if a._base is not None else a
                if not any(_same_as_made(made.get(id(t)), t) for t in (a, base)):
                    found.append(a)
        return found

    def _code_input(self, made: list[torch.Tensor], layer: str) -> torch.Tensor | None:
        """The sum of the inputs the code between layers `made` (`_made_by_code`), NaN exactly when one holds
        NaN/Inf, taken before the layer runs. Without it, a NaN born in the layer itself (a NaN weight) was blamed
        on that code first, and in a transformer most layers' inputs are made by code (a residual sum, merged
        heads). Only those inputs: a layer's output beside them was finite, or that layer would be the origin."""
        with torch._C.DisableTorchFunction(), self.guard.catch(layer):
            # activations, summed as the outputs are (deferred.exact_sums): a sum in double costs 8x one in float32
            return self._input_sum(made, torch.float32)
        return None

    def _note_fed_by_code(self, name: str, site: tuple | None, code_input: torch.Tensor | None) -> None:
        """Keep where the user's code called layer `name` with an input of its own making (its first call): `site`,
        the call's place (call_site.py). A layer a torch container calls (a Sequential's child) has none: the
        nearest container's caller's is kept. `code_input` (see _code_input) is added to the step's."""
        fed = self.pending.fed_by_code
        if name not in fed:
            outer = (call_site(frame.caller) for frame in reversed(self._stack))
            fed[name] = site if site is not None else next((s for s in outer if s is not None), None)
        if code_input is not None:
            sums = self.pending.code_inputs
            sums[name] = code_input if name not in sums else sums[name] + code_input

    def _begin_forward(self, args) -> None:
        checkpointed = checkpoint_pass()  # see checkpointing.py
        self._grads_only = checkpointed is CheckpointPass.RECOMPUTE
        self._observing = torch.is_grad_enabled() or checkpointed is CheckpointPass.FORWARD
        if self._observing and torch._C._are_functorch_transforms_active():
            # Under torch.func (vmap, grad) tensors are wrapped per transform level and may not leave it:
            # kept for the step's transfer they would raise there. Such forwards are listed as unmeasured.
            self._observing = False
            self.guard.note("torch.func transform (vmap/grad): its forwards are not measured")
        self._forward_index = len(self.pending.forwards)
        self._outputs.clear()
        self._output_of.clear()
        self._node_of.clear()
        self._made = {id(t): (weakref.ref(t), t._version) for t in _floating_tensors(list(args))}
        if self._observing:
            self.amp.look_from_caller()
        self._occurrence.clear()
        self._site_names.clear()
        if checkpointed is CheckpointPass.NONE:  # checkpoint_sequential calls the layers one by one: the
            self._unit_axis.reset()  # layer that produced an activation may be the previous root forward's
        self._failed_exc = None
        self.failed_layer = None
        self.failed_layer_type = None
        sensitive = [(n, m) for n, m in self._mode_modules if mode_sensitive(m)]
        training = tuple(n for n, m in sensitive if m.training)
        evaluating = tuple(n for n, m in sensitive if not m.training and not _frozen_on_purpose(m))
        input_sum = self._input_sum(args) if self._observing else None
        self._forward_mark = self.pending.mark()
        if not self._grads_only:  # a recomputation is no forward of its own
            facts = ForwardFacts(self._observing, self.model.training, training, evaluating, input_sum)
            self.pending.add_forward(facts, self.config.calls_per_layer_step)
        if self._observing and (self.detailed or self._functional_seen):
            self._mode.__enter__()
            self._mode_entered = True

    @staticmethod
    def _input_sum(args: tuple, wide: torch.dtype | None = None) -> torch.Tensor | None:
        """0, or NaN when any floating-point value the model was given is NaN/Inf: all of its inputs, not only the
        first (a two-tower model's second; `model(token_ids, features)`), inside tuples, lists and dicts. Only
        whether it is finite is read. Inputs on another device than the first are left out: adding them would
        move them. `wide`: the dtype of a long sum (see deferred.finite_sum). None, for data, whose values may be
        anything: double where the device has it, so that no finite batch overflows the sum (200,000
        half-precision ones sum past float16's 65504, a dozen rows of 3e38 past float32's largest). float32 for
        activations, like the layers' own exact sums: it overflows only where they average past 3.4e38 over
        their count, and costs an eighth of double's time on a CPU."""
        inputs = [t for t in _floating_tensors(list(args)) if t.numel()]
        if not inputs:
            return None
        if wide is None:
            wide = torch.float64 if inputs[0].device.type in ("cpu", "cuda") else torch.float32  # MPS has no double
        sums = [deferred.finite_sum(t, wide) for t in inputs if t.device == inputs[0].device]
        total = sums[0] if len(sums) == 1 else torch.stack(sums).sum()
        return (total - total).float()  # NaN exactly when the sum is not finite

    def _exit_mode(self) -> None:
        if self._mode_entered:
            self._mode_entered = False
            self._mode.__exit__(None, None, None)

    def _observe_module(self, frame: _Frame, args, output) -> None:
        tensor = _primary_tensor(output)
        module = frame.module
        if tensor is None:
            return
        family = module_family(module)
        if family is None and frame.activation_out is tensor:
            family = frame.activation_family
        site = call_site(frame.caller)
        # an activation module's units are those of the layer feeding it (see _next_name)
        fed_by = self._producer(args[0]) if family is not None and site is not None and args else None
        name = self._next_name(frame.name or type(module).__name__, site, fed_by)
        if name not in self.catalog.inputs and args and not self._grads_only:
            self.catalog.note_input(name, fed_by if fed_by is not None else self._producer(args[0]))
        if self.graph is not None and frame.input_fns is not None:
            self.graph.inputs(name, frame.input_fns)
        type_name = type(module).__name__
        bounds = bounds_of(family, module)
        others = _other_outputs(output, tensor, args)
        if frame.fed_by_code:
            self._note_fed_by_code(name, site, frame.code_input)
        self._observe(name, type_name, family, bounds, tensor, frame.name, False, frame.preact_max, others)
        self._unit_axis.produced(module)

    def _call_functional(self, func, family: str, args, kwargs):
        if not self._stack:
            return func(*args, **kwargs)  # outside the watched model (e.g. in the loss)
        frame = self._stack[-1]
        if not frame.structural_leaf or module_family(frame.module) is None:
            self._functional_seen = True  # it is a layer, or gives one its family (not nn.ReLU's own F.relu)
        started = time.perf_counter()
        if self.pending.watching:
            self.pending.look_for_changes()
        try:
            return self._functional(func, family, args, kwargs)
        finally:
            self._charge(started, 0.0)

    def _functional(self, func, family: str, args, kwargs):
        frame = self._stack[-1]
        if frame.structural_leaf:  # it belongs to the leaf module calling it
            first = args[0] if args else None
            fires_here = family == RELU_FAMILY and module_family(frame.module) is None and not self._grads_only
            if fires_here and isinstance(first, torch.Tensor):
                # the units fired from this input, not the module's
                frame.preact_max = self._unit_max(first, frame.name)
            out = self._user_call(func, *args, **kwargs)
            frame.activation_out, frame.activation_family = out, family
            return out
        frame.had_sublayer = True
        fname = functional_name(func)
        site = functional_call_site(sys._getframe(1), func)
        first = args[0] if args else None
        fed_by = self._producer(first) if site is not None else None
        name = self._next_name(f"{frame.name}.{fname}()" if frame.name else f"{fname}()", site, fed_by)
        if name not in self.catalog.inputs and not self._grads_only:
            self.catalog.note_input(name, fed_by if fed_by is not None else self._producer(first))
        if self.graph is not None and isinstance(first, torch.Tensor):
            self.graph.inputs(name, [first.grad_fn])
        made = self._made_by_code(args[:1]) if not self._grads_only else []
        if made:
            self._note_fed_by_code(name, site, self._code_input(made, name))
        tracks = family == RELU_FAMILY and isinstance(first, torch.Tensor) and not self._grads_only
        preact = self._unit_max(first, name) if tracks else None
        replacement = self.substitutions.get(name)
        out = self._user_call(replacement, first) if replacement is not None else self._user_call(func, *args, **kwargs)
        if isinstance(out, torch.Tensor):
            bounds = bounds_of(family, None)
            if family == "hardtanh":
                lo = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
                hi = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
                bounds = (float(lo), float(hi))
            type_name = functional_name(func) if replacement is None else replacement.__name__
            self._observe(name, type_name, family, bounds, out, frame.name, True, preact)
        return out

    def _next_name(self, base: str, site: tuple | None, producer: str | None = None) -> str:
        """`base` for a layer's first call in a forward, `base#2`, `base#3`... for calls from other places.

        Calls from the same place in the user's code (a cell run once per time
        step in a loop) are one layer, their calls merged in the step. An
        activation's calls there (a functional one, or one activation module
        shared by the layers) are one layer per layer feeding it (`producer`,
        through the code between them: see `_producer`): in `for fc in
        self.layers: x = torch.relu(fc(x))` each ReLU has units of its own,
        and merged, a dead one among live ones went unseen. Other modules need
        no such key: the same module called again from one place (weights tied
        across depth) is the same layer.
        """
        key = (base, site, producer)
        if site is not None and key in self._site_names:
            return self._site_names[key]
        n = self._occurrence.get(base, 0) + 1
        self._occurrence[base] = n
        name = base if n == 1 else f"{base}#{n}"
        if site is not None:
            self._site_names[key] = name
        return name

    def _producer(self, x) -> str | None:
        """The layer of this forward whose output `x` is, or, when code made `x` (`x + blk(x)`, `fc(x) * 2`,
        `fc(x)[:, :16]`), the latest layer whose output that code used, up to `_PRODUCER_DEPTH` autograd nodes
        back; None when there is none (no gradient, or only the model's inputs)."""
        if not isinstance(x, torch.Tensor):
            return None
        made = self._output_of.get(id(x))
        if made is not None and made[0]() is x:
            return made[1]
        nodes = [x.grad_fn] if x.grad_fn is not None else []
        for _ in range(_PRODUCER_DEPTH):
            found = [self._node_of[id(n)] for n in nodes if id(n) in self._node_of]
            if found:
                return max(found, key=lambda entry: entry[2])[1]
            nodes = [nxt for n in nodes for nxt, _ in n.next_functions if nxt is not None][:_PRODUCER_WIDTH]
        return None

    def _unit_max(self, x: torch.Tensor, layer: str) -> torch.Tensor | None:
        """Per-unit maximum of a ReLU's input, read before an in-place activation overwrites it. None for an empty
        input (a mixture-of-experts expert given no rows in this batch): no unit fired or failed to fire in that
        call. A failure is the guard's, never the training's: this runs before the user's own activation."""
        if x.numel() == 0:
            return None
        with torch._C.DisableTorchFunction(), self.guard.catch(layer):
            return stats.unit_max(x.detach(), self._channel_first(x))
        return None

    def _channel_first(self, x: torch.Tensor) -> bool:
        return self._unit_axis.channel_first(x)

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
        others: tuple[torch.Tensor, ...] = (),
    ) -> None:
        """Measure `tensor`, the layer's output, and hook the gradient reaching it and each of `others`,
        the layer's other outputs (an LSTM's h_n and c_n): the gradient reaching the layer is theirs together."""
        if not _measurable(tensor):
            return
        ref = weakref.ref(tensor)
        self._output_of[id(tensor)] = (ref, name)  # a checkpoint's recomputation names its layers the same way
        if tensor.grad_fn is not None:
            self._node_of[id(tensor.grad_fn)] = (tensor.grad_fn, name, len(self._node_of))
        if self._grads_only:  # measured in the forward pass; its gradient flows through these tensors
            with torch._C.DisableTorchFunction():
                self._hook_gradients(name, self._measured_forward(name), tensor, others)
            return
        self.last_layer = name
        info = self.catalog.note(name, type_name, family, module_name, functional, bounds)
        limit = self.config.calls_per_layer_step
        if not self.pending.admit(name, limit):
            self.guard.note(
                f"{name}: called more than {limit} times in one step (forwards without w.step()?); "
                "the rest was not measured"
            )
            return
        with torch._C.DisableTorchFunction():
            with self.guard.catch(name):
                self._measure(info, tensor, preact)
            self._hook_gradients(name, self._forward_index, tensor, others)
        self._outputs.append((ref, name))
        self._made[id(tensor)] = (ref, tensor._version)
        for other in others:
            self._made[id(other)] = (weakref.ref(other), other._version)
        if self.graph is not None:
            self.graph.output(name, tensor, *others)
        if self.listener is not None:
            self._user_call(self.listener, "forward", name, tensor)

    def _hook_gradients(self, name: str, forward: int, tensor: torch.Tensor, others: tuple[torch.Tensor, ...]) -> None:
        """A gradient hook on each of a layer's outputs that autograd may reach. Each gradient is a GradCall
        of the layer, merged like its calls' (collect.py): one norm over all of them, NaN/Inf in any."""
        hook = self._grad_hook(name, forward, recomputed=self._grads_only)
        if tensor.requires_grad:
            self.pending.hook_gradient(tensor, name, hook)
        for other in others:
            if other.requires_grad:
                self.pending.hook_gradient(other, name, hook)

    def _measured_forward(self, name: str) -> int:
        """The root forward in which `name` was measured: a recomputation's gradient belongs to that forward."""
        return next((c.forward for c in reversed(self.pending.calls) if c.layer.name == name), self._forward_index)

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
            # a ReLU's output holds NaN/Inf exactly when its input's per-unit maxima do (collect.call_finite)
            exact_sum=self.exact or info.family != RELU_FAMILY or info.type in CLIPPED_RELU_TYPES or preact is None,
        )
        call = ActivationCall(
            info, tuple(x.shape), x.numel(), None, None, None, unit_positive, positions, preact, 0, self._forward_index
        )
        call.stash = stash
        if not self._defer(stash):
            if self.catalog.needs_check(stash.key):  # first sight: learn whether it changes in place after this
                self.pending.watch(stash, tensor, hold=stash.nbytes <= _DEFER_MAX_BYTES)
            deferred.take_passes(stash, cfg, self.exact)
        self.pending.calls.append(call)

    def _defer(self, stash: Stash) -> bool:
        """Leave the passes over the whole tensor to the end of the forward (a gradient's, of the backward):
        the tensor is small, known not to change in place, and fits. A large tensor gains nothing from being
        batched (its own passes outweigh the dispatch) and is still in the cache now; held longer than the
        model holds it, it makes the allocator fetch fresh memory for what follows. Either way, an
        activation's sample statistics are computed with all layers' at the end of the forward."""
        if stash.nbytes > _DEFER_MAX_BYTES or not self.catalog.defers(stash.key):
            return False
        if self.pending.stashed_bytes + stash.nbytes > self._stash_limit:
            return False
        self.pending.stashed_bytes += stash.nbytes
        return True

    # ----- backward -----
    def _grad_hook(self, name: str, forward: int, recomputed: bool):
        """The hook on a gradient reaching layer `name`'s output. It counts in training passes only (a gradient
        penalty's autograd.grad is not one: training_pass.py); a `recomputed` output (a checkpoint's) gets its
        gradient in the checkpoint's own nested pass, which counts as the training pass it runs inside. The
        gradients of other passes are kept aside: they are the step's when no pass trained (take_pending)."""
        passes = self.training_passes

        def hook(grad: torch.Tensor) -> None:
            started = time.perf_counter()
            pending = self.pending
            if pending.watching:
                pending.look_for_changes()
            training = True
            with torch._C.DisableTorchFunction(), self.guard.catch(name):
                training = recomputed or passes is None or passes.now()
                g = unscaled(grad, self._grad_unscale(pending)).detach()
                if g.dtype != torch.float32:
                    g = g.float()
                hist_range = self.config.grad_log10_range if self.detailed else None
                call = GradCall(
                    name, None, None, Stash(g, g._version, (name, "backward"), hist_range=hist_range), forward
                )
                (pending.grads if training else pending.other_grads).append(call)
                if not (self._settle_when_backward_ends(pending) and self._defer(call.stash)):
                    # measured now, while in the cache: held longer, a large gradient keeps the backward
                    # from reusing its memory (see deferred.py)
                    if self.catalog.needs_check(call.stash.key):  # first sight: does it change after this?
                        pending.watch(call.stash, grad, hold=call.stash.nbytes <= _DEFER_MAX_BYTES)
                    deferred.settle_gradients([call], self.config, self.exact)
                    call.stash.measured = True
                    call.stash.tensor = None  # kept to the end of the backward, it would hold the memory too
                pending.stashed_grads.append(call)  # version-checked (and measured, if stashed) at the end
            order = pending.backward_order if training else pending.other_order
            if name not in order:
                order.append(name)
            self.last_layer = name
            if self.position is not None:
                self.position("backward", name)
            pending.hook_seconds += time.perf_counter() - started + self.costs.tensor_hook
            if self.listener is not None:
                self.listener("backward", name, grad)

        return hook

    def _settle_when_backward_ends(self, pending: PendingStep) -> bool:
        """Have the gradients stashed in this backward measured together when it ends; False outside one.

        The autograd engine runs a queued callback once the whole backward is done, in the thread that
        ran it: every gradient has arrived, and none is held past it.
        """
        if pending.backward_queued:
            return True
        try:
            torch.autograd.Variable._execution_engine.queue_callback(lambda: self._backward_ended(pending))
        except RuntimeError:  # no backward running (a hook called by hand)
            return False
        pending.backward_queued = True
        return True

    def _backward_ended(self, pending: PendingStep) -> None:
        started = time.perf_counter()
        pending.backward_queued = False
        with self.guard.catch("gradients"):  # raised here, it would end the user's backward() call
            deferred.settle_backward(pending, self.config, self.catalog, self.guard, self.exact)
        with self.guard.catch("gradients as the backward left them"):
            self.updates.backward_ended()
        pending.hook_seconds += time.perf_counter() - started

    def _scaler_at_step(self) -> None:
        """Learn the GradScaler from its step(optimizer) when no other way found it (see observe.amp)."""
        if not self.amp.look_from_optimizer_step():
            return
        pending = self.pending
        if pending.grad_unscale is None and pending.grads:  # this step's backward ran before the scaler was known
            self._grad_unscale(pending)
            pending.unscale_late = True

    def _grad_unscale(self, pending: PendingStep) -> torch.Tensor | None:
        """1/scale of a GradScaler's loss scaling, fixed at the step's first gradient (update() changes it later)."""
        if pending.grad_unscale is None:
            scale = self.amp.current_scale()
            if scale is None:
                return None
            pending.grad_scale = scale.detach().clone()
            pending.grad_unscale = pending.grad_scale.double().reciprocal().float()
        return pending.grad_unscale


def _frozen_on_purpose(module: nn.Module) -> bool:
    """A BatchNorm whose own parameters are all frozen (requires_grad=False): kept in eval mode on purpose while
    fine-tuning the rest, the usual recipe, not a forgotten model.train(). One without parameters
    (affine=False) says nothing about intent."""
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def _is_leaf(module: nn.Module) -> bool:
    """A module with no children of its own (a parametrization's container does not count)."""
    return all(name == "parametrizations" for name in module._modules)


def _runs_inside(frame: FrameType | None, ancestor: FrameType | None) -> bool:
    """Whether `ancestor` is on the call chain of `frame`: a module call nested in a call still running."""
    while frame is not None:
        if frame is ancestor:
            return True
        frame = frame.f_back
    return ancestor is None


def _same_as_made(made: tuple[weakref.ref, int] | None, tensor: torch.Tensor) -> bool:
    """Whether `tensor` is the one kept in `made`, unchanged in place since."""
    return made is not None and made[0]() is tensor and tensor._version == made[1]


def _floating_tensors(output) -> list[torch.Tensor]:
    """Every floating-point tensor of a module's output, inside tuples, lists and dicts."""
    if isinstance(output, torch.Tensor):
        return [output] if output.is_floating_point() else []
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _floating_tensors(item)]
    return []


def _measurable(tensor: torch.Tensor) -> bool:
    """Whether a layer's statistics and gradient can be taken of this output (not empty, integer or sparse)."""
    return tensor.is_floating_point() and tensor.numel() > 0 and tensor.layout == torch.strided


def _other_outputs(output, primary: torch.Tensor, args: tuple) -> tuple[torch.Tensor, ...]:
    """The floating tensors of a tuple/list/dict output besides `primary`, each once, that this call made.

    nn.LSTM returns `output, (h_n, c_n)`, and a model reading only h_n sends its gradient there: watched on
    `primary` alone, such a layer had no gradient, and a NaN entering through h_n was first seen at the
    layer below. An input handed back unchanged is left out: its gradient is the one leaving the layer.
    """
    if isinstance(output, torch.Tensor):
        return ()
    skip = {id(primary), *(id(a) for a in args if isinstance(a, torch.Tensor))}
    others = []
    for tensor in _floating_tensors(output):
        if id(tensor) not in skip and _measurable(tensor):
            skip.add(id(tensor))
            others.append(tensor)
    return tuple(others)


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
