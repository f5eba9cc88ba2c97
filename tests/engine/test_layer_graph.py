"""The layer graph follows the data, residual connections and in-place activations included."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import bpviz
from tests.engine.models import train


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return F.gelu(self.act(self.fc(x)) + x)


class Net(nn.Module):
    def __init__(self, frozen_input: bool = False):
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.b1 = Block()
        self.out = nn.Linear(8, 3)
        self.inp.requires_grad_(not frozen_input)

    def forward(self, x):
        return self.out(self.b1(self.inp(x)))


def graph_of(model):
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with bpviz.watch(model) as w:
        train(model, w, 2, x, y)
    return w.graph


def test_edges_follow_the_data_through_a_residual_block():
    torch.manual_seed(0)
    graph = graph_of(Net())
    assert [n.name for n in graph.nodes] == ["inp", "b1.fc", "b1.act", "b1.gelu()", "out"]
    assert graph.edges == [
        ("inp", "b1.fc"),
        ("b1.fc", "b1.act"),
        ("inp", "b1.gelu()"),
        ("b1.act", "b1.gelu()"),
        ("b1.gelu()", "out"),
    ]
    assert graph.nodes[2].module_path == ("b1", "act")
    assert graph.predecessors("b1.gelu()") == ["inp", "b1.act"]


def test_layers_the_gradient_graph_cannot_reach_join_in_call_order():
    torch.manual_seed(0)
    graph = graph_of(Net(frozen_input=True))
    assert ("inp", "b1.fc") in graph.edges  # the frozen layer's output has no grad_fn


class FinalState(nn.Module):
    """A classifier on an RNN's final hidden state: the head reads h_n, not the RNN's first output."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.rnn = rnn
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        _, state = self.rnn(self.inp(x).unsqueeze(1))
        h = state[0] if isinstance(state, tuple) else state
        return self.out(h[-1])


def test_a_layer_read_through_its_second_output_feeds_the_next_layer():
    for rnn in (nn.LSTM(6, 5, batch_first=True), nn.GRU(6, 5, batch_first=True)):
        graph = graph_of(FinalState(rnn))
        assert graph.edges == [("inp", "rnn"), ("rnn", "out")]  # not ("inp", "out") past the RNN
