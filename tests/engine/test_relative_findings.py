"""Gradient findings judged against the run itself: healthy runs of any scale stay silent, diverging ones do not.

Every expected value is computed here from the model's own `.grad` tensors
and losses, not from bpviz's numbers.
"""

from __future__ import annotations

import copy
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from tests.engine.real_models import VAE, BagOfWords, TinyConvNeXt, strokes, vae_loss


def own_total_norm(model: nn.Module) -> float:
    return math.sqrt(sum(float(p.grad.detach().pow(2).sum()) for p in model.parameters() if p.grad is not None))


def run(model, opt, batches, loss_fn, steps, backward_scale=None, clip=None):
    """A plain loop, its gradients clipped to `clip` when given; returns (watcher, losses, own gradient norms
    before each update, before clipping)."""
    losses, norms = [], []
    with bpviz.watch(model) as w:
        for step in range(steps):
            x, y = batches[step % len(batches)]
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            scale = backward_scale(step) if backward_scale else 1.0
            (loss * scale).backward()
            norms.append(own_total_norm(model))
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            losses.append(float(loss.detach()))
            w.step(loss)
    return w, losses, norms


def test_a_loss_summed_over_the_batch_has_huge_gradients_and_no_finding_while_it_falls():
    torch.manual_seed(0)
    model = VAE()
    g = torch.Generator().manual_seed(0)
    batches = [(x, x) for x in (strokes(128, g) for _ in range(4))]
    w, losses, norms = run(model, torch.optim.Adam(model.parameters(), lr=1e-3), batches, vae_loss, 24)
    assert max(norms) > 1e4  # far above any fixed "exploding" norm
    assert losses[-1] < losses[0] / 2
    assert [f for f in w.findings if f.kind == "exploding_gradient"] == []


def divergent_mlp() -> nn.Sequential:
    """Ten LeakyReLU layers at twice the Kaiming scale: gradients and updates feed each other."""
    torch.manual_seed(0)
    layers = []
    for i in range(10):
        linear = nn.Linear(32 if i == 0 else 64, 64)
        nn.init.normal_(linear.weight, std=2 * math.sqrt(2 / linear.in_features))
        layers += [linear, nn.LeakyReLU(0.1)]
    return nn.Sequential(*layers, nn.Linear(64, 4))


def mlp_batches(n=4):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(32, 32, generator=g), torch.randint(0, 4, (32,), generator=g)) for _ in range(n)]


def first_jump(norms, losses, growth=100.0, window=10):
    for s in range(1, len(norms)):
        median = statistics.median(norms[max(0, s - window) : s])
        if math.isfinite(norms[s]) and norms[s] > growth * median:
            return s, losses[s] > statistics.median(losses[max(0, s - window) : s])
    return None, None


def test_a_diverging_run_is_an_exploding_error_at_the_step_its_norm_jumps_with_the_loss():
    model = divergent_mlp()
    w, losses, norms = run(model, torch.optim.SGD(model.parameters(), lr=0.01), mlp_batches(), F.cross_entropy, 3)
    step, rose = first_jump(norms, losses)
    assert step is not None and rose
    exploding = [f for f in w.findings if f.kind == "exploding_gradient"]
    assert [(f.step, f.severity, f.layer) for f in exploding] == [(step, "error", None)]


def test_a_gradient_jump_while_the_loss_falls_is_only_a_warning():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))

    def boost(step: int) -> float:
        return 1e4 if step == 5 else 1.0  # the backward of step 5 alone is 1e4 times larger

    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    w, losses, norms = run(model, opt, mlp_batches(1), F.cross_entropy, 6, backward_scale=boost)
    step, rose = first_jump(norms, losses)
    assert (step, rose) == (5, False)
    exploding = [f for f in w.findings if f.kind == "exploding_gradient"]
    assert [(f.step, f.severity) for f in exploding] == [(5, "warning")]
    assert f"{norms[5]:.2e}" in exploding[0].message


def test_a_jump_that_clipping_caps_is_found_as_the_backward_left_it_and_clipping_is_named():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))

    def boost(step: int) -> float:
        return 1e4 if step == 5 else 1.0

    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    w, losses, norms = run(model, opt, mlp_batches(1), F.cross_entropy, 6, backward_scale=boost, clip=1.0)
    assert norms[5] > 1e3 and max(norms[:5]) < 1.0  # before clipping; the optimizer saw at most 1.0
    exploding = [f for f in w.findings if f.kind == "exploding_gradient"]
    assert [(f.step, f.severity, f.layer) for f in exploding] == [(5, "warning", None)]
    clipped = norms[5] * min(1.0, 1.0 / (norms[5] + 1e-6))  # clip_grad_norm_'s own rule
    message = exploding[0].message
    assert f"jumped to {norms[5]:.2e}" in message and f"cut to {clipped:.2e}" in message, message
    assert "clip_grad_norm_" in message and not exploding[0].remedies[0].startswith("Clip gradients")
    assert [r.grad_norm_backward for r in w.history.records] == pytest.approx(norms, rel=1e-4)


class _FrozenTable(nn.Module):
    """Fine-tuning a head over a frozen embedding table, the model's largest parameter, which gets no gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.table, self.head = nn.Embedding(5000, 32), nn.Linear(32, 4)
        self.table.weight.requires_grad_(False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.table(tokens).mean(1))


def test_the_norm_before_clipping_is_kept_when_the_largest_parameter_is_frozen():
    torch.manual_seed(0)
    model = _FrozenTable()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 5000, (16, 7), generator=g), torch.randint(0, 4, (16,), generator=g))]
    opt = torch.optim.SGD(model.head.parameters(), lr=0.1)
    w, _, norms = run(model, opt, batches, F.cross_entropy, 3, clip=0.01)
    records = list(w.history.records)
    assert [r.grad_norm_backward for r in records] == pytest.approx(norms, rel=1e-4)
    assert min(norms) > 0.1  # clipped on every step, to:
    assert [math.sqrt(sum(p.grad_norm**2 for p in r.params if p.grad_norm)) for r in records] == pytest.approx(
        [0.01] * 3, rel=1e-4
    )


def tower(activation: type[nn.Module], width: int, depth: int, outputs: int) -> nn.Sequential:
    """Linear + `activation` from 16 inputs, then `depth` more of width `width`, then a Linear to `outputs`."""
    torch.manual_seed(0)
    layers = [nn.Linear(16, width), activation()]
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation()]
    return nn.Sequential(*layers, nn.Linear(width, outputs))


def test_a_divergence_under_clipping_is_found_where_its_unclipped_norm_jumps():
    """The samples' errors line up as it diverges: the parameters' gradients grow with the batch, the layers'
    output gradients only with its square root, so judged from those (9x) it was missed; unclipped, 157x."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 16, generator=g)
    y = x[:, :4].sum(1, keepdim=True).sin() * 3
    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 1024, 64)]
    model = tower(nn.Tanh, 64, 10, 1)
    opt = torch.optim.SGD(model.parameters(), lr=5.0, momentum=0.9)
    w, losses, norms = run(model, opt, batches, F.mse_loss, 12, clip=1.0)
    step, rose = first_jump(norms, losses)
    assert step is not None
    exploding = [f for f in w.findings if f.kind == "exploding_gradient"]
    assert exploding and exploding[0].step == step
    assert exploding[0].severity == ("error" if rose else "warning")


def test_a_huge_loss_gradient_at_an_output_sigmoid_is_no_hidden_explosion():
    """BCELoss after a Sigmoid sends (p - y) / (p (1 - p)) back: a confidently wrong sample makes the Sigmoid's
    output gradient explode while every parameter's gradient stays bounded. Nothing clips here, and nothing
    exploded: it was an error saying clipping hid an explosion."""
    torch.manual_seed(0)
    x = torch.randn(2048, 20)
    y = (x @ torch.randn(20) > 0).float()
    flipped = torch.randperm(2048)[:10]
    y[flipped] = 1 - y[flipped]  # a little label noise
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    sigmoid_grads = []

    def keep(module, args, out) -> None:
        out.register_hook(lambda grad: sigmoid_grads.append(float(grad.norm())))

    model[3].register_forward_hook(keep)
    with bpviz.watch(model) as w:
        for _ in range(300):
            rows = torch.randint(0, 2048, (64,), generator=g)
            loss = F.binary_cross_entropy(model(x[rows]).squeeze(1), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    assert max(sigmoid_grads) > 1e4 * statistics.median(sigmoid_grads)  # the Sigmoid's output gradient did explode
    assert [f for f in w.findings if f.kind == "exploding_gradient"] == []


def test_a_healthy_run_clipped_on_every_step_is_silent():
    torch.manual_seed(0)
    model = VAE()
    g = torch.Generator().manual_seed(0)
    batches = [(x, x) for x in (strokes(128, g) for _ in range(4))]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    w, losses, norms = run(model, opt, batches, vae_loss, 24, clip=1.0)
    assert min(norms) > 1e3  # clipped on every step
    assert losses[-1] < losses[0] / 2
    assert [f for f in w.findings if f.kind == "exploding_gradient"] == []


def test_small_gradients_under_adam_are_not_vanishing_but_under_sgd_they_are():
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(32, 16, generator=g), torch.randint(0, 4, (32,), generator=g))]
    found = {}
    for name, make in (("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)):
        model = tower(nn.Sigmoid, 32, 8, 4)
        w, _, _ = run(model, make(model.parameters(), lr=1e-3), batches, F.cross_entropy, 3)
        found[name] = [(f.layer, f.severity) for f in w.findings if f.kind == "vanishing_gradient"]
        first = own_first_to_last_rms(model)
        assert first < 1e-6  # the same starved first layer in both runs
    assert found == {"adam": [], "sgd": [("0", "error")]}


def own_first_to_last_rms(model: nn.Sequential) -> float:
    linears = [m for m in model if isinstance(m, nn.Linear)]
    rms = [float(m.weight.grad.pow(2).mean().sqrt()) for m in (linears[0], linears[-1])]
    return rms[0] / rms[1]


def test_convnext_layer_scale_under_adamw_is_silent():
    torch.manual_seed(0)
    model = TinyConvNeXt()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 4, (16,), generator=g))]
    w, losses, _ = run(model, torch.optim.AdamW(model.parameters(), lr=4e-3), batches, F.cross_entropy, 6)
    assert losses[-1] < losses[0]
    assert w.findings == []


def test_a_vae_output_sigmoid_at_its_bounds_is_not_saturation_but_a_hidden_one_is():
    torch.manual_seed(0)
    model = VAE()
    g = torch.Generator().manual_seed(0)
    batches = [(x, x) for x in (strokes(32, g) for _ in range(2))]
    w, _, _ = run(model, torch.optim.Adam(model.parameters(), lr=1e-2), batches, vae_loss, 24)
    recon = model(batches[0][0])[0]
    assert float(((recon < 0.01) | (recon > 0.99)).float().mean()) > 0.5  # most outputs sit at a bound
    assert w.history.latest.output_layers == {"sigmoid()", "fc21", "fc22"}  # recon, mu, logvar
    assert [f for f in w.findings if f.kind == "saturated_activation"] == []
    # the same sigmoid inside the model is judged
    torch.manual_seed(0)
    hidden = nn.Sequential(nn.Linear(4, 16), nn.Sigmoid(), nn.Linear(16, 3))
    with torch.no_grad():
        hidden[0].weight.mul_(60)
    x, y = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    w, _, _ = run(hidden, torch.optim.SGD(hidden.parameters(), lr=0.01), [(x, y)], F.cross_entropy, 1)
    assert [(f.kind, f.layer) for f in w.findings] == [("saturated_activation", "1")]


def test_a_validation_with_eval_but_without_no_grad_is_no_finding_and_not_in_the_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    val = torch.randn(64, 4, generator=g) * 100  # very unlike the training data
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with bpviz.watch(model) as w:
        for _ in range(2):
            model.eval()
            model(val)  # validation with gradients enabled: correct code, no backward
            model.train()
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            record = w.step(loss)
    assert w.findings == []
    assert [f.backward for f in record.forwards] == [False, True]
    first = record.layer("0")
    own = model[0](x)  # the training forward's output alone, with this step's weights before its update
    assert first.shape == tuple(own.shape)
    assert record.layer("4").max < 50  # the validation's huge values are not mixed in
    with bpviz.watch(model) as w:  # the same validation forgetting model.eval() is still caught when it runs
        with torch.no_grad():
            model(val)
    assert [f.kind for f in w.findings] == ["train_mode_in_eval"]


def test_a_large_vocabulary_embedding_is_judged_on_the_rows_it_looked_up():
    torch.manual_seed(0)
    model = BagOfWords(vocab=50000)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 50000, (32, 12), generator=g), torch.randint(0, 4, (32,), generator=g))]
    w, _, _ = run(model, torch.optim.SGD(model.parameters(), lr=0.5), batches, F.cross_entropy, 3)
    grad = model.embedding.weight.grad
    rows = int((grad.abs().amax(dim=1) > 0).sum())
    assert rows == len(torch.unique(batches[0][0]))
    param = next(p for p in w.history.latest.params if p.name == "embedding.weight")
    assert param.grad_numel == rows * 32
    assert param.grad_norm == pytest.approx(float(grad.norm()), rel=1e-5)
    assert w.findings == []


def test_a_sparse_embedding_is_measured_and_never_raises_into_training():
    torch.manual_seed(0)
    model = BagOfWords(vocab=5000, sparse=True)
    reference = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 5000, (32, 12), generator=g), torch.randint(0, 4, (32,), generator=g))]
    opt = torch.optim.SGD(reference.parameters(), lr=0.5)
    for _ in range(3):
        loss = F.cross_entropy(reference(batches[0][0]), batches[0][1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    w, _, _ = run(model, torch.optim.SGD(model.parameters(), lr=0.5), batches, F.cross_entropy, 3)
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        assert torch.equal(mine, theirs)  # trained exactly as without bpviz
    param = next(p for p in w.history.latest.params if p.name == "embedding.weight")
    assert param.grad_norm == pytest.approx(float(model.embedding.weight.grad.coalesce().values().norm()), rel=1e-5)
    assert w.report()["unmeasured"] == []
