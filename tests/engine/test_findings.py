"""Each finding kind on the layer that has the problem, and none on a healthy network."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from tests.engine.models import NanMaker, batch, dead_unit_mlp, train


def kinds(watcher):
    return {(f.kind, f.layer, f.severity) for f in watcher.findings}


def test_dead_relu_warning_from_a_tenth_error_from_half():
    for dead, severity in ((1, None), (2, "warning"), (7, "warning"), (8, "error"), (12, "error")):
        model = dead_unit_mlp(dead, width=16)
        x, y = batch()
        with bpviz.watch(model) as w:
            train(model, w, 3, x, y)
        found = [f for f in w.findings if f.kind == "dead_relu"]
        if severity is None:
            assert found == []
        else:
            assert [(f.layer, f.severity, f.step) for f in found] == [("1", severity, 2)]
            assert f"{dead} of 16 units of 1" in found[0].message
            assert found[0].remedies


def test_nan_finding_names_the_layer_where_it_was_born():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), NanMaker(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = batch()
    with bpviz.watch(model) as w:
        records = train(model, w, 2, x, y)
    assert records[0].nonfinite_origin == "2"
    assert records[0].layer("3").nonfinite  # spread downstream, not reported as a birth
    nan = [f for f in w.findings if f.kind == "nan_or_inf"]
    assert [(f.layer, f.step, f.severity) for f in nan] == [("2", 0, "error")]
    assert "NanMaker" in nan[0].message


def test_nan_in_the_input_blames_the_data():
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = batch()
    x[0, 0] = float("nan")
    with bpviz.watch(model) as w:
        train(model, w, 1, x, y)
    assert [(f.kind, f.layer) for f in w.findings] == [("nan_or_inf", None)]
    assert "input batch" in w.findings[0].message


class _TokensAndFeatures(nn.Module):
    """model(tokens, features, extra={"more": tensor}): the first input holds integers."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.features, self.more = nn.Embedding(10, 8), nn.Linear(4, 8), nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens, features, extra):
        return self.head(self.embed(tokens).mean(1) + self.features(features) + self.more(extra["more"]))


@pytest.mark.parametrize("where", ["features", "extra"])
def test_nan_in_any_input_blames_the_data_not_the_layer_reading_it(where):
    """Only the first tensor argument was checked: NaN in a second input, or in one inside a dict, was blamed on
    the layer reading it ("every layer before it was finite")."""
    torch.manual_seed(0)
    model = _TokensAndFeatures()
    tokens, features, more = torch.randint(0, 10, (8, 5)), torch.randn(8, 4), torch.randn(8, 4)
    (features if where == "features" else more)[0, 0] = float("nan")
    with bpviz.watch(model) as w:
        loss = F.cross_entropy(model(tokens, features, extra={"more": more}), torch.randint(0, 3, (8,)))
        loss.backward()
        record = w.step(loss)
    assert record.forwards[0].input_nonfinite
    assert [(f.kind, f.layer) for f in w.findings] == [("nan_or_inf", None)]
    assert w.findings[0].message.startswith("The input batch of step 0 already contains NaN/Inf")


@pytest.mark.parametrize(
    ("dtype", "value", "shape"),
    [
        (torch.float16, 1.0, (2000, 100)),
        (torch.float32, 3e38, (12, 100)),
        (torch.float32, 3e38, (12, 20000)),  # past the length summed by a dot product
        (torch.float64, 1e300, (4, 100)),
    ],
)
def test_a_large_finite_input_batch_is_no_nan_and_one_inf_in_it_is(dtype, value, shape):
    """The input's sum was taken in its own precision: 200,000 half-precision ones sum past 65504, a dozen
    rows of float32 values of 3e38 past float32's largest (a double's, kept in float32, too), and the batch was
    said to hold NaN/Inf."""
    torch.manual_seed(0)
    model = nn.Linear(shape[1], 3).to(dtype)
    big = torch.full(shape, value, dtype=dtype)
    # summed in the batch's own precision and kept in float32 as the layers' sums are, even in their unit, it overflows
    assert not torch.isfinite((big.sum() * 2.0**-32).float())
    broken = big.clone()
    broken[3, 7] = float("inf")
    for x, nonfinite in ((big, False), (broken, True)):
        with bpviz.watch(model) as w:
            loss = model(x).float().mean()
            loss.backward()
            record = w.step(loss)
        assert record.forwards[0].input_nonfinite is nonfinite
        blamed = [f for f in w.findings if f.message.startswith("The input batch of step 0 already contains NaN/Inf")]
        assert len(blamed) == nonfinite


def test_a_half_precision_gradient_past_65504_has_its_norm_and_is_no_overflow():
    """Normed in its own precision, a float16 gradient of norm 3e5 read as Inf: "above 1.8e19" to the findings."""
    torch.manual_seed(0)
    model = nn.Linear(64, 64).half()
    x = torch.randn(32, 64).half()
    with bpviz.watch(model) as w:
        loss = model(x).float().pow(2).mean() * 3e5
        loss.backward()
        record = w.step(loss)
    own = {name: float(p.grad.float().norm()) for name, p in model.named_parameters()}
    assert own["weight"] > 65504 and all(math.isfinite(v) for v in own.values())
    assert {p.name: p.grad_norm for p in record.params} == pytest.approx(own, rel=1e-3)
    assert "exploding_gradient" not in kinds(w)


class _PaddingMask(nn.Module):
    def forward(self, scores, pad):
        return scores.masked_fill(pad[:, None, :], float("-inf"))


class _MaskedAttention(nn.Module):
    """Attention whose padding mask is a layer of its own; `after`: what reads the masked scores."""

    def __init__(self, after: nn.Module) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(16, 16) for _ in range(4))
        self.mask, self.after = _PaddingMask(), after

    def forward(self, x, pad):
        weights = self.after(self.mask(self.q(x) @ self.k(x).transpose(1, 2) / 4.0, pad))
        return self.o((weights @ self.v(x)).mean(1))


@pytest.mark.parametrize("level", ["economy", "full"])
def test_a_mask_layer_holding_minus_inf_before_a_softmax_is_no_nan_birth(level):
    """A healthy model: the -inf is the mask's, and the softmax makes it zeros. It was an error from step 0, so
    `bpviz check` failed it. The same -inf read by a layer that spreads it is still where NaN/Inf was born."""
    torch.manual_seed(0)
    x, pad, y = torch.randn(8, 6, 16), torch.zeros(8, 6, dtype=torch.bool), torch.randint(0, 16, (8,))
    pad[:, 4:] = True
    for after, born in ((nn.Softmax(-1), None), (nn.Identity(), "mask")):
        model = _MaskedAttention(after)
        with bpviz.watch(model, level=level) as w:
            loss = F.cross_entropy(model(x, pad), y)
            loss.backward()
            record = w.step(loss)
        assert record.layer("mask").nonfinite and record.layer("mask").mean == float("-inf")
        assert record.nonfinite_origin == born
        assert [f.layer for f in w.findings if f.kind == "nan_or_inf"] == ([] if born is None else ["mask"])


class _NanGradient(torch.autograd.Function):
    """The identity, whose backward makes a NaN at step `at`."""

    step, at = 0, 2

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        if _NanGradient.step == _NanGradient.at:
            grad = grad.clone()
            grad[0, 0] = float("nan")
        return grad


class _MakesNanGradient(nn.Module):
    def forward(self, x):
        return _NanGradient.apply(x)


def test_a_nan_made_in_a_backward_says_it_came_from_what_reads_the_layer_it_reached():
    """It was named "at act" alone, as if act had made it; the gradient reaching the layer above was finite."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.fc1, model.act, model.bad, model.fc2 = nn.Linear(4, 8), nn.ReLU(), _MakesNanGradient(), nn.Linear(8, 3)
    x, y = batch()
    with bpviz.watch(model) as w:
        for step in range(3):
            _NanGradient.step = step
            records = train(model, w, 1, x, y)
    assert records[-1].nonfinite_grad_origin == "act" and not records[-1].layer("bad").grad_nonfinite
    nan = [f for f in w.findings if f.kind == "nan_or_inf"]
    assert [(f.layer, f.step) for f in nan] == [("act", 2)]
    assert nan[0].message == (
        "A NaN/Inf gradient first appeared at act during the backward pass of step 2: the gradient reaching act's "
        "output holds it, while the one reaching bad, just before in the backward pass, was finite. It was made by "
        "the backward of what lies between them (what reads act's output: a custom autograd.Function, a sqrt or "
        "division at 0), not by act itself."
    )


def test_train_mode_in_eval_from_a_validation_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.Linear(8, 3))
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 2, x, y)
        with torch.no_grad():  # forgot model.eval()
            model(x)
        assert ("train_mode_in_eval", "1", "error") in kinds(w)
        assert "1, 2" in w.findings[0].message
        model.eval()
        with torch.no_grad():
            model(x)
    assert [f.kind for f in w.findings].count("train_mode_in_eval") == 1


def test_a_correct_validation_raises_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    x, y = batch(n=64)
    with bpviz.watch(model) as w:
        train(model, w, 4, x, y)
        model.eval()
        with torch.no_grad():
            model(x)
        model.train()
        train(model, w, 1, x, y)
    assert w.findings == []


def test_eval_mode_in_training_is_a_warning():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)).eval()
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 1, x, y)
    assert kinds(w) == {("eval_mode_in_training", "1", "warning")}


def test_a_batchnorm_frozen_on_purpose_is_no_mode_mistake_but_dropout_and_trainable_ones_still_are():
    """Fine-tuning with a frozen backbone keeps its BatchNorm in eval mode with requires_grad=False: the recipe.
    A BatchNorm that still trains its parameters, one without parameters, and Dropout are still reported."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 8),
        nn.BatchNorm1d(8),  # 1: frozen on purpose
        nn.BatchNorm1d(8),  # 2: trainable, left in eval: a forgotten model.train()
        nn.BatchNorm1d(8, affine=False),  # 3: no parameters to say what was meant
        nn.Dropout(0.1),  # 4
        nn.Linear(8, 3),
    )
    model.train()
    for index in (1, 2, 3, 4):
        model[index].eval()
    model[1].requires_grad_(False)
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 1, x, y)
        finding = next(f for f in w.findings if f.kind == "eval_mode_in_training")
    assert "3 module(s) with dropout or BatchNorm in eval mode (2, 3, 4)" in finding.message


@pytest.mark.parametrize("functional", [False, True])
def test_softmax_before_cross_entropy(functional):
    torch.manual_seed(0)
    if functional:

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                return F.softmax(self.fc(x), dim=1)

        model = Net()
    else:
        model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 1, x, y)
    found = [(f.kind, f.layer, f.severity) for f in w.findings]
    assert found == [("softmax_before_cross_entropy", None if functional else "1", "error")]


def test_log_softmax_with_nll_is_fine():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1))
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 2, x, y, loss_fn=F.nll_loss)
    assert w.findings == []


def deep(activation, depth, width=32):
    torch.manual_seed(0)
    layers = [nn.Linear(16, width), activation()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), activation()]
    layers.append(nn.Linear(width, 4))
    return nn.Sequential(*layers)


def test_vanishing_gradient_on_the_first_layer_of_a_deep_sigmoid_net():
    model = deep(nn.Sigmoid, 10)
    x, y = batch(n=32, features=16, classes=4)
    with bpviz.watch(model) as w:
        train(model, w, 2, x, y)
    vanishing = [f for f in w.findings if f.kind == "vanishing_gradient"]
    assert [f.layer for f in vanishing] == ["0"]
    assert vanishing[0].severity in ("warning", "error")


def test_saturated_tanh():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    with torch.no_grad():
        model[0].weight.mul_(50)
    x, y = batch()
    with bpviz.watch(model) as w:
        record = train(model, w, 1, x, y)[-1]
    assert record.layer("1").saturated_fraction > 0.5
    assert ("saturated_activation", "1", "warning") in kinds(w)


def test_healthy_network_has_no_error_findings():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 64), nn.BatchNorm1d(64), nn.GELU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)
    )
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 16, generator=g)
    y = x[:, :4].argmax(dim=1)
    with bpviz.watch(model) as w:
        train(model, w, 30, x, y, lr=0.05)
    assert [f for f in w.findings if f.severity == "error"] == []


def test_nan_outputs_are_not_reported_as_dead_units():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), NanMaker(), nn.ReLU(), nn.Linear(8, 3))
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 4, x, y)
    assert [f.kind for f in w.findings] == ["nan_or_inf"]


def test_huge_but_finite_gradients_are_exploding_not_nan():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    x, _ = batch()
    with bpviz.watch(model) as w:
        loss = (model(x) * 1e25).sum()  # d(loss)/d(out) = 1e25: finite, but its square overflows float32
        loss.backward()
        record = w.step(loss)
    head = record.layer("2")
    assert not head.grad_nonfinite and head.grad_norm == float("inf")
    assert record.nonfinite_grad_origin is None
    assert [(f.kind, f.severity) for f in w.findings] == [("exploding_gradient", "error")]
    assert w.findings[0].message.startswith("A gradient norm is above 1.8e19, where its square overflows float32")


class _Huge(nn.Module):
    """Finite values near float32's largest (3e38): a dozen of them sum past it. `back` scales them back down."""

    def __init__(self, back: bool = False) -> None:
        super().__init__()
        self.back = back

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1e-38 if self.back else x.abs() * 0 + 3e38


@pytest.mark.parametrize("level", ["economy", "full"])
def test_huge_finite_activations_are_no_nan_and_their_mean_is_right(level):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), _Huge(), nn.ReLU(), _Huge(back=True), nn.Linear(3, 3))
    x, y = batch()
    with bpviz.watch(model, level=level) as w:
        record = train(model, w, 2, x, y)[-1]
    with torch.no_grad():
        huge = model[1](model[0](x)).double()
    assert huge.sum() > torch.finfo(torch.float32).max  # a float32 sum of these overflows
    for name in ("1", "2"):  # the values, and a ReLU's (at the economy level estimated from its input's maxima)
        layer = record.layer(name)
        assert not layer.nonfinite
        assert layer.mean == pytest.approx(float(huge.mean()), rel=1e-6)
    assert record.nonfinite_origin is None
    assert "nan_or_inf" not in kinds(w)


class _SkipNet(nn.Module):
    """A U-Net's shape in small: an encoder output reaches the decoder through a skip concatenated with the
    upsampled path. `made_in` says where a NaN is made: in the code of the skip path, in a layer, or in the
    weights of the decoder, whose input the code made (the concatenation)."""

    def __init__(self, made_in: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.made_in = made_in
        self.enc = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.nan = NanMaker() if made_in == "layer" else nn.Identity()
        self.dec = nn.Conv2d(8, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 2)
        if made_in == "weights":
            with torch.no_grad():
                self.dec.weight[0, 0, 0, 0] = float("nan")

    def forward(self, x):
        features = F.relu(self.enc(x))
        skip = features / (features - features) if self.made_in == "code" else features  # 0/0 between layers
        up = self.nan(self.up(F.relu(self.down(features))))
        mixed = self.dec(torch.cat([up, skip], 1))
        return self.head(torch.flatten(mixed, 1))  # a view of dec's output: no code of its own


def _line_calling(function, text: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


@pytest.mark.parametrize("level", ["economy", "full"])
def test_a_nan_made_by_code_between_layers_sends_the_user_to_that_code(level):
    """NaN made on a skip path, in the model's forward, was reported as born in the decoder conv reading it; then,
    with the code only suspected, a NaN weight of that conv sent the user to the code first."""
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    found = {}
    for made_in in ("code", "layer", "weights"):
        model = _SkipNet(made_in)
        with bpviz.watch(model, level=level) as w:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            record = w.step(loss)
        found[made_in] = (record, [(f.kind, f.layer, f.message) for f in w.findings if f.kind == "nan_or_inf"])
    record, findings = found["code"]
    line = _line_calling(_SkipNet.forward, "self.dec(")
    assert record.nonfinite_origin == "dec" and record.nonfinite_input_measured
    assert record.nonfinite_input_from == f"_SkipNet.forward (test_findings.py:{line})"
    assert findings == [
        (
            "nan_or_inf",
            "dec",
            f"NaN/Inf was born at step 0 in the code between the layers, where _SkipNet.forward (test_findings.py:"
            f"{line}) calls dec (Conv2d): the input that code made for dec holds it, while every layer before was "
            "finite. Look at that code: a division, log or sqrt; a sum that overflowed.",
        )
    ]
    for made_in, origin, kind in (("layer", "nan", "NanMaker"), ("weights", "dec", "Conv2d")):
        record, findings = found[made_in]
        # fed by up, a layer; or by the concatenation, measured finite: either way the layer made it
        assert record.nonfinite_origin == origin and record.nonfinite_input_from is None
        assert findings == [
            (
                "nan_or_inf",
                origin,
                f"NaN/Inf was born in {origin} ({kind}) at step 0: its output holds it, while everything it was "
                "given was finite.",
            )
        ]


def test_a_run_recorded_before_code_made_inputs_were_measured_still_says_the_code_may_have_made_it():
    """Re-judged, a run file whose records name the code without a measurement keeps the cautious message."""
    from bpviz.engine.diagnosis import nan_or_inf
    from bpviz.engine.record.records import LayerStep, StepRecord

    layer = LayerStep("dec", "Conv2d", (2, 4, 8, 8), None, 0, nonfinite=True)
    record = StepRecord(3, float("nan"), [layer], nonfinite_origin="dec", nonfinite_input_from="Net.forward (n.py:9)")
    message = nan_or_inf._forward_birth(record)
    assert "where Net.forward (n.py:9) calls it. The NaN/Inf may have been made there" in message


class _InPlaceGate(nn.Module):
    """A gated block ending like torchvision's BasicBlock (`out += identity`), in place: `out *= gate`, then the
    activation, here inside a Sequential."""

    def __init__(self, in_place: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.in_place = in_place
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
        self.tail = nn.Sequential(nn.ReLU(), nn.Linear(4, 2))
        with torch.no_grad():  # each output 1e20: their product overflows to inf
            for layer in (self.a, self.b):
                layer.weight.zero_()
                layer.bias.fill_(1e20)

    def forward(self, x):
        out, gate = self.a(x), self.b(x)
        if self.in_place:
            out *= gate
        else:
            out = out * gate
        return self.tail(out)


@pytest.mark.parametrize("in_place", [True, False])
def test_an_overflowing_product_is_code_between_layers_even_when_made_in_place(in_place):
    """`out *= gate` keeps the tensor a's output: read by identity alone, the ReLU after it was blamed."""
    model = _InPlaceGate(in_place)
    with bpviz.watch(model) as w:
        model(torch.randn(3, 4)).sum().backward()
        record = w.step()
    line = _line_calling(_InPlaceGate.forward, "self.tail(")
    assert record.nonfinite_origin == "tail.0"
    # the ReLU is a Sequential's child: the place named is the user's call of the Sequential
    assert record.nonfinite_input_from == f"_InPlaceGate.forward (test_findings.py:{line})"


@pytest.mark.parametrize(
    "layer, counts",
    [
        (nn.MultiheadAttention(8, 2, dropout=0.1, batch_first=True), True),
        (nn.LSTM(8, 8, num_layers=2, dropout=0.3, batch_first=True), True),
        (nn.LSTM(8, 8, num_layers=1, batch_first=True), False),  # no dropout between one layer
        (nn.Dropout(0.0), False),  # drops nothing in either mode (Hugging Face's default rate)
        (nn.BatchNorm1d(4, track_running_stats=False), False),  # normalises by the batch in both modes
    ],
    ids=["attention-dropout", "stacked-lstm-dropout", "one-layer-lstm", "dropout-p0", "batchnorm-no-stats"],
)
def test_eval_mode_counts_dropout_inside_layers_and_only_modules_the_mode_changes(layer, counts):
    """Left in eval mode, an attention layer's or a stacked LSTM's own dropout went unreported (only Dropout
    modules were looked at), and a Hugging Face ViT's Dropout(p=0.0) modules were reported though they drop
    nothing."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = layer
            self.head = nn.Linear(8 if not isinstance(layer, nn.BatchNorm1d) else 4, 3)

        def forward(self, x):
            if isinstance(self.inner, nn.MultiheadAttention):
                x = self.inner(x, x, x, need_weights=False)[0]
            elif isinstance(self.inner, nn.LSTM):
                x = self.inner(x)[0]
            elif isinstance(self.inner, nn.BatchNorm1d):
                x = self.inner(x[..., :4].reshape(-1, 4)).reshape(*x.shape[:-1], 4)
            else:
                x = self.inner(x)
            return self.head(x.mean(dim=1))

    torch.manual_seed(0)
    model = Net()
    model.eval()  # and never model.train() again
    x, y = torch.randn(16, 5, 8), torch.randint(0, 3, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bpviz.watch(model) as w:
        for _ in range(2):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
        found = [f for f in w.findings if f.kind == "eval_mode_in_training"]
    if counts:
        assert [f.layer for f in found] == ["inner"]
        assert "1 module(s) with dropout or BatchNorm in eval mode (inner)" in found[0].message
    else:
        assert found == []


@pytest.mark.parametrize("norm", [False, True], ids=["linear", "batchnorm-between"])
def test_units_dead_downstream_of_a_dead_layer_send_the_user_to_the_layers_before(norm):
    """Behind a layer whose units all died, the next ReLU's units with a negative bias die at step 0 too; their
    finding blamed the initialisation ("they never fired"), sending the user to the wrong layer. With a BatchNorm
    between, its shift is the bias, and its 1/sqrt(eps) magnifies the rounding of a batch of equal values."""
    torch.manual_seed(0)
    shifted = nn.BatchNorm1d(6) if norm else nn.Identity()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6), shifted, nn.ReLU(), nn.Linear(6, 3))
    biases = torch.tensor([-0.5, -0.2, -0.1, 0.1, 0.3, 0.4])  # three of the second ReLU's units below zero
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every unit of the first ReLU dead from the start
        model[2].bias.copy_(biases * 7.0)  # normalised away behind the BatchNorm, whose shift is the bias then
        if norm:
            shifted.bias.copy_(biases)
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 12, x, y)
        found = {f.layer: f for f in w.findings if f.kind == "dead_relu"}
    assert set(found) == {"1", "4"}
    first, second = found["1"], found["4"]
    assert "the initialisation is the likely cause" in first.message  # the first one's own bias killed it
    assert first.remedies[0].startswith("Initialise with Kaiming")
    assert "3 of 6 units of 4 (50%) are dead" in second.message
    assert "no signal reaches the layer (each unit's pre-activation is its bias alone)" in second.message
    assert "initialisation" not in second.message and second.remedies[0].startswith("Look at what feeds these units")


def test_units_whose_own_weights_are_zero_are_not_taken_for_a_silent_input():
    """dead_unit_mlp's dead units have zero incoming weights, so their pre-activation is their bias too; the layer's
    live units show that its input carries a signal."""
    model = dead_unit_mlp(dead=2)
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 12, x, y)
        finding = next(f for f in w.findings if f.kind == "dead_relu")
    assert "no signal reaches" not in finding.message and "Look at what feeds" not in finding.remedies[0]


def test_a_forward_that_raised_leaves_no_code_made_input_behind():
    """A forward whose code made a NaN for `b` and then raised, caught by the user, is no part of the step; its
    measurement of that input stayed, and the retry's NaN, born in b's own weight, was blamed on the code."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x, fail: bool = False):
            h = self.a(x)
            out = self.b(h / (h - h) if fail else h)  # 0/0 in the code, then the failure
            if fail:
                raise RuntimeError("a batch the user skips")
            return out

    model = Net()
    x, y = batch()
    with bpviz.watch(model) as w:
        try:
            model(x, fail=True)
        except RuntimeError:
            pass
        with torch.no_grad():
            model.b.weight[0, 0] = float("nan")
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        record = w.step(loss)
    assert record.nonfinite_origin == "b" and record.nonfinite_input_from is None
    assert not record.nonfinite_input_measured
