"""Dying ReLU, fixed: the same network and data with zero biases and a gentler learning rate.

The twin of dying_relu.py. Its second hidden layer starts with the default
(zero-centred) biases instead of -2, and SGD runs at 0.05 instead of 0.5, so
relu2's inputs straddle zero and every unit keeps receiving gradient.

What to look for: no dead_relu finding; relu2's histogram is spread over
positive values and its unit-activity strip is lit. Compare the two runs:
`bpviz check sample_models/dying_relu.py --record a.bpviz`, the same for this
file into b.bpviz, then `bpviz compare a.bpviz b.bpviz`.

The fix: applied here (default biases, learning rate 0.05); nn.LeakyReLU or
nn.GELU would keep a gradient for negative inputs as well.
"""

import torch
from dying_relu import MLP, make_batches


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    model = MLP()
    model.fc2.reset_parameters()  # the default init: biases around zero instead of -2
    return {
        "model": model,
        "train_data": make_batches(generator, 10),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.05),
    }
