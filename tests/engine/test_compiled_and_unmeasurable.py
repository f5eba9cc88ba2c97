"""torch.compile, torch.func and steps where nothing could be observed: said so, never 'no findings'."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from bpviz.cli import main


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)


def own_output_grad_norms(model: nn.Sequential, x, y) -> dict[str, float]:
    """Gradient norms reaching each child's output, from the test's own hooks on an uncompiled copy."""
    norms, handles = {}, []
    for name, child in model.named_children():

        def hook(module, args, out, name=name):
            out.register_hook(lambda g: norms.__setitem__(name, float(g.norm())))

        handles.append(child.register_forward_hook(hook))
    F.cross_entropy(model(x), y).backward()
    for h in handles:
        h.remove()
    return norms


@pytest.mark.parametrize("order", ["compile_then_watch", "watch_then_compile"])
def test_a_compiled_model_is_measured_eagerly_under_its_own_layer_names(order):
    model = mlp()
    expected = own_output_grad_norms(copy.deepcopy(model), *data())
    x, y = data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if order == "compile_then_watch":
            compiled = torch.compile(model, backend="eager")
            w = bpviz.watch(compiled)
        else:
            w = bpviz.watch(model)
            compiled = torch.compile(model, backend="eager")
        with w:
            loss = F.cross_entropy(compiled(x), y)
            loss.backward()
            record = w.step(loss)
    assert [layer.name for layer in record.layers] == ["0", "1", "2"]
    for name, norm in expected.items():
        assert record.layer(name).grad_norm == pytest.approx(norm, rel=1e-6)
    compile_warnings = [c for c in caught if "torch.compile" in str(c.message)]
    assert len(compile_warnings) == (1 if order == "compile_then_watch" else 0)
    from torch._dynamo import eval_frame

    assert eval_frame._stance.stance == "default"


def test_a_step_in_which_no_layer_was_observed_is_unmeasured_not_clean():
    model = mlp()
    trained = copy.deepcopy(model)  # the loop trains a copy: nothing of the watched model runs
    x, y = data()
    with bpviz.watch(model) as w:
        loss = F.cross_entropy(trained(x), y)
        loss.backward()
        with pytest.warns(RuntimeWarning, match="observed no layer"):
            record = w.step(loss)
        w.step(loss)  # warned once
    assert record.layers == []
    assert w.unobserved_steps == [0, 1]
    assert "step 0: observed no layer of the model" in w.report()["unmeasured"]


def test_check_exits_2_when_it_observed_no_layer(tmp_path, capsys):
    path = tmp_path / "spectral.py"
    path.write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Spectral(nn.Module):\n"
        '    """Returns a complex spectrum: no floating-point output for bpviz to measure."""\n\n'
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.w = nn.Parameter(torch.randn(4, 8))\n\n"
        "    def forward(self, x):\n"
        "        return torch.fft.rfft(x @ self.w)\n\n"
        "def loss_fn(spectrum, target):\n"
        "    return (spectrum.abs() - target).pow(2).mean()\n\n"
        "def build():\n"
        "    data = [(torch.randn(8, 4), torch.rand(8, 5))]\n"
        "    return {'model': Spectral(), 'train_data': data, 'loss_fn': loss_fn}\n"
    )
    assert main(["check", str(path), "--steps", "2"]) == 2
    assert "observed no layer of the model in 2 of 2 step(s)" in capsys.readouterr().err


def test_per_sample_gradients_with_vmap_are_listed_unmeasured_and_never_raise():
    model = mlp()
    x, y = data()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p, xi, yi):
        return F.cross_entropy(torch.func.functional_call(model, p, (xi[None],)), yi[None])

    with bpviz.watch(model) as w:
        grads = torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
        with pytest.warns(RuntimeWarning, match="observed no layer"):
            w.step()
    own = torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    assert all(torch.equal(grads[k], own[k]) for k in own)
    assert any("torch.func" in entry for entry in w.report()["unmeasured"])


@pytest.mark.parametrize("order", ["first_first", "last_first"])
def test_two_watchers_give_the_compiler_its_stance_back_whichever_detaches_first(order):
    """The stance is one for the process: a watcher detached out of turn must not leave every compile eager."""
    from torch._dynamo import eval_frame

    first, second = bpviz.watch(mlp()), bpviz.watch(mlp())
    assert eval_frame._stance.stance == "force_eager"
    for w in (first, second) if order == "first_first" else (second, first):
        w.detach()
    assert eval_frame._stance.stance == "default"
