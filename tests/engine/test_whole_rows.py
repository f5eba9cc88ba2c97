"""A tensor that fits in its sample is measured from its row of the stacked sample, as exactly as by its own passes.

From a layer's second step on, outputs and gradients are measured together at the
end of the forward and of the backward. A small tensor's sample is all of it, so
its sum, sum of squares and extremes come from its row, with no pass of its own;
a larger one's from passes over every value. Both kinds are in one model here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from tests.engine.models import train

SMALL, LARGE = "0", "2"  # 20 x 10 values fit in the 4,096-value sample; 20 x 300 do not


def model_and_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 10), nn.Tanh(), nn.Linear(10, 300), nn.Tanh(), nn.Linear(300, 3))
    return model, torch.randn(20, 4), torch.randint(0, 3, (20,))


def capture(model: nn.Module) -> tuple[dict, dict]:
    """Each layer's output and output gradient of the latest step, as the user's own hooks see them."""
    outputs, grads = {}, {}
    for name, module in model.named_children():
        module.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out.detach().clone()))
        module.register_full_backward_hook(lambda m, gi, go, name=name: grads.__setitem__(name, go[0].clone()))
    return outputs, grads


@pytest.mark.parametrize("level", ["economy", "full"])
def test_small_and_large_tensors_of_one_step_have_the_exact_statistics_of_every_value(level):
    model, x, y = model_and_batch()
    outputs, grads = capture(model)
    with bpviz.watch(model, level=level) as w:  # the first step is measured in the hooks; the later ones together
        record = train(model, w, 3, x, y, lr=0.1)[-1]
    for name in (SMALL, LARGE, "1"):
        values = outputs[name].double().numpy()
        layer = record.layer(name)
        assert layer.mean == pytest.approx(values.mean(), rel=1e-5, abs=1e-7), name  # exact at both levels
        if level == "full" or values.size <= 4096:  # over every value; the economy level samples larger ones
            assert layer.std == pytest.approx(values.std(), rel=1e-5), name
            assert (layer.min, layer.max) == (pytest.approx(values.min()), pytest.approx(values.max())), name
            assert layer.grad_norm == pytest.approx(float(grads[name].double().norm()), rel=1e-5), name


@pytest.mark.parametrize("level", ["economy", "full"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_one_nan_or_inf_in_a_small_tensor_is_found_in_its_row(level, value):
    model, x, y = model_and_batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bpviz.watch(model, level=level) as w:
        for step in range(4):
            batch = x.clone()
            if step == 3:
                batch[7, 2] = value  # one value of 80 in the input: 10 of the first layer's 200 outputs
            loss = F.cross_entropy(model(batch), y)
            opt.zero_grad()
            loss.backward()
            record = w.step(loss)
    assert record.nonfinite_origin == SMALL
    assert record.layer(SMALL).nonfinite and not np.isfinite(record.layer(SMALL).mean)
