"""Shares read as percentages never round onto 0% or 100% when they are neither: almost all is not all."""

from __future__ import annotations

import pytest

import bpviz
from bpviz.engine.report.percent import percent_text
from bpviz.gui.format import percent
from tests.engine.models import batch, dead_unit_mlp, train


@pytest.mark.parametrize(
    ("share", "decimals", "text"),
    [
        (1.0, 1, "100.0%"),
        (0.0, 1, "0.0%"),
        (0.9995, 1, ">99.9%"),  # 3 units of 64 firing on a few samples: "100.0%" read as the whole layer
        (0.99949, 1, "99.9%"),
        (0.0004, 1, "<0.1%"),
        (0.5, 1, "50.0%"),
        (255 / 256, 0, ">99%"),
        (0.994, 0, "99%"),
        (0.004, 0, "<1%"),
    ],
)
def test_percent_text_keeps_almost_all_apart_from_all(share, decimals, text):
    assert percent_text(share, decimals) == text


def test_the_window_table_formats_shares_the_same_way():
    assert percent(0.9995) == ">99.9%"
    assert percent(None) == "–"


def test_a_dead_relu_finding_with_one_unit_alive_of_256_does_not_say_100_percent():
    model = dead_unit_mlp(255, width=256)
    x, y = batch()
    with bpviz.watch(model) as w:
        train(model, w, 4, x, y)
        finding = next(f for f in w.findings if f.kind == "dead_relu")
    assert finding.message.startswith("255 of 256 units of 1 (>99%) are dead")
