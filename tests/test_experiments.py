"""Healthy real-world architectures under `bpviz check`: exit 0, no warning, a falling loss, every layer seen.

The experiment files in tests/experiments/ build a torchvision-style ResNet-18
(channels_last), a GPT-style decoder and an LSTM language model from plain
torch; they are controls, not lessons, so they live here and not among the samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bpviz.cli import main

EXPERIMENTS = Path(__file__).parent / "experiments"


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("resnet18.py", {"conv1", "layer1.0.conv1", "layer4.1.bn2", "fc"}),
        ("gpt_block.py", {"wte", "wpe", "blocks.0.attn.qkv", "blocks.1.proj", "head"}),
        ("lstm_lm.py", {"encoder", "rnn", "decoder"}),
    ],
)
def test_healthy_real_model_checks_clean(tmp_path, name, layers):
    out = tmp_path / "report.json"
    assert main(["check", str(EXPERIMENTS / name), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [f for f in report["findings"] if f["severity"] != "info"] == []
    assert report["loss"][-1] < report["loss"][0]
    assert layers <= {layer["name"] for layer in report["layers"]}


def test_every_channels_last_conv_of_resnet18_has_a_nonzero_update_ratio(tmp_path):
    out = tmp_path / "report.json"
    assert main(["check", str(EXPERIMENTS / "resnet18.py"), "--steps", "2", "--json", str(out)]) == 0
    convs = [layer for layer in json.loads(out.read_text())["layers"] if layer["type"] == "Conv2d"]
    assert len(convs) == 20
    assert all(layer["update_ratio"] > 0 for layer in convs)
