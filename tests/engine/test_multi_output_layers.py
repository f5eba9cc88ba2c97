"""A layer returning several tensors (an LSTM's `output, (h_n, c_n)`) receives the gradient of each of them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.checkpoint import checkpoint

import bpviz
from tests.engine.models import train


def _record_gradients(module: nn.Module) -> dict[int, list[torch.Tensor]]:
    """The gradients reaching each floating output of `module` (by its place in the output), from the test's own
    hooks, every call's."""
    seen: dict[int, list[torch.Tensor]] = {}

    def tensors(output):
        if isinstance(output, torch.Tensor):
            return [output] if output.is_floating_point() else []
        return [t for item in output for t in tensors(item)]

    def hook(_module, _args, output):
        for place, tensor in enumerate(tensors(output)):
            if tensor.requires_grad:
                tensor.register_hook(lambda g, place=place: seen.setdefault(place, []).append(g.detach().clone()))

    module.register_forward_hook(hook)
    return seen


def _norm(seen: dict[int, list[torch.Tensor]], places=None) -> float:
    """The norm over the gradients of the outputs at `places` (every output by default) together."""
    chosen = [g for place, grads in seen.items() if places is None or place in places for g in grads]
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in chosen))


class LastState(nn.Module):
    """An RNN whose head reads only its final hidden state, the usual `_, h = rnn(x)` classifier."""

    def __init__(self, rnn: nn.Module, packed: bool) -> None:
        super().__init__()
        self.inp = nn.Linear(3, 6)
        self.rnn = rnn
        self.head = nn.Linear(5, 2)
        self.packed = packed

    def forward(self, x):
        x = self.inp(x)
        if self.packed:
            x = pack_padded_sequence(x, torch.tensor([5, 3, 4, 2]), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state
        return self.head(h[-1])


@pytest.mark.parametrize(
    "rnn, packed",
    [
        (nn.LSTM(6, 5, batch_first=True), False),
        (nn.GRU(6, 5, batch_first=True), False),
        (nn.LSTM(6, 5, batch_first=True), True),  # its output is a PackedSequence no gradient reaches
    ],
    ids=["lstm", "gru", "packed-lstm"],
)
def test_rnn_read_through_its_final_state_has_the_gradient_of_every_output(rnn, packed):
    torch.manual_seed(0)
    model = LastState(rnn, packed)
    seen = _record_gradients(model.rnn)
    x, y = torch.randn(4, 5, 3), torch.tensor([0, 1, 1, 0])
    with bpviz.watch(model, level="full") as w:
        record = train(model, w, 1, x, y)[-1]
    assert seen  # h_n's gradient reached the test's hooks
    assert record.layer("rnn").grad_norm == pytest.approx(_norm(seen), rel=1e-5)
    assert record.layer("rnn").grad_nonfinite is False


class Pair(nn.Module):
    """A user's layer returning two tensors; `poisoned`: the model takes the square root of the second."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(6, 4) * 0.5)
        self.w2 = nn.Parameter(torch.randn(6, 4) * 0.5)

    def forward(self, x):
        return torch.tanh(x @ self.w1), x @ self.w2


class PairNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.pair = Pair()
        self.head = nn.Linear(8, 3)
        self.poisoned = False

    def forward(self, x):
        a, b = self.pair(self.inp(x))
        if self.poisoned:  # NaN for negative b, replaced in the forward but not in the backward
            b = torch.nan_to_num(torch.sqrt(b))
        return self.head(torch.cat([a, b], dim=1))


def test_tuple_returning_module_has_the_norm_over_both_outputs_gradients():
    torch.manual_seed(0)
    model = PairNet()
    seen = _record_gradients(model.pair)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with bpviz.watch(model, level="full") as w:
        record = train(model, w, 1, x, y)[-1]
    assert sorted(seen) == [0, 1]
    assert record.layer("pair").grad_norm == pytest.approx(_norm(seen), rel=1e-5)
    assert record.layer("pair").grad_norm > _norm(seen, [0]) * 1.01  # not the first output's alone


@pytest.mark.parametrize("level", ["economy", "full"])
def test_nan_in_the_second_outputs_gradient_is_born_at_that_layer_and_step(level):
    torch.manual_seed(0)
    model = PairNet()
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    records = []
    with bpviz.watch(model, level=level) as w:
        for step in range(3):
            model.poisoned = step == 1
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            records.append(w.step(loss))
        findings = [(f.kind, f.layer, f.step) for f in w.findings]
    assert [r.nonfinite_grad_origin for r in records[:2]] == [None, "pair"]
    assert records[1].layer("head").grad_nonfinite is False  # the NaN is born in the backward of the sqrt
    assert ("nan_or_inf", "pair", 1) in findings


class PassThrough(nn.Module):
    """Returns its input beside its output: the input's gradient is the one leaving the layer."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 6) * 0.5)

    def forward(self, x):
        return torch.tanh(x @ self.w), x


def test_an_input_handed_back_is_not_an_output_whose_gradient_reaches_the_layer():
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(4, 6)
            self.through = PassThrough()
            self.head = nn.Linear(12, 3)

        def forward(self, x):
            return self.head(torch.cat(self.through(self.inp(x)), dim=1))

    model = Net()
    reaching_inp = _record_gradients(model.inp)
    reaching_through = _record_gradients(model.through)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with bpviz.watch(model, level="full") as w:
        record = train(model, w, 1, x, y)[-1]
    assert sorted(reaching_through) == [0, 1]  # its own output's and its input's
    assert record.layer("through").grad_norm == pytest.approx(_norm(reaching_through, [0]), rel=1e-5)
    assert record.layer("inp").grad_norm == pytest.approx(_norm(reaching_inp), rel=1e-5)


@pytest.mark.parametrize("reentrant", [True, False])
def test_a_checkpointed_tuple_layer_has_the_gradient_of_both_outputs(reentrant):
    class Checkpointed(PairNet):
        def forward(self, x):
            a, b = checkpoint(self.pair, self.inp(x), use_reentrant=reentrant)
            return self.head(torch.cat([a, b], dim=1))

    torch.manual_seed(0)
    model = Checkpointed()
    seen = _record_gradients(model.pair)  # called twice: its forward and the recomputation in backward
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with bpviz.watch(model, level="full") as w:
        record = train(model, w, 1, x, y)[-1]
    assert sorted(seen) == [0, 1] and [len(grads) for grads in seen.values()] == [1, 1]
    assert record.layer("pair").calls == 1
    assert record.layer("pair").grad_norm == pytest.approx(_norm(seen), rel=1e-5)
