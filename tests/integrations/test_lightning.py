"""A tiny Lightning fit with BpvizCallback: steps, gradients before clipping, findings in Lightning's logging."""

from __future__ import annotations

import csv
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

from bpviz.integrations.lightning import BpvizCallback  # noqa: E402
from tests.engine.models import dead_unit_mlp  # noqa: E402


class Classifier(pl.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class GradientsSeen(pl.Callback):
    """Independent record of each parameter's gradient norm where Lightning hands them over, and after clipping."""

    def __init__(self) -> None:
        self.before_clip: list[dict[str, float]] = []
        self.at_step: list[dict[str, float]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.before_clip.append({n: p.grad.norm().item() for n, p in pl_module.named_parameters()})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if len(self.at_step) < len(self.before_clip):
            self.at_step.append({n: p.grad.norm().item() for n, p in pl_module.named_parameters()})


def _fit(tmp_path, net: nn.Module, callbacks: list, steps: int = 3, validate: bool = False) -> pl.Trainer:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(48, 4, generator=g), torch.randint(0, 3, (48,), generator=g))
    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=callbacks,
        accumulate_grad_batches=2,
        gradient_clip_val=1e-3,
        accelerator="cpu",
        devices=1,
        logger=pl.loggers.CSVLogger(tmp_path),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    trainer.fit(Classifier(net), loader, val_dataloaders=loader if validate else None)
    return trainer


def test_one_step_per_optimizer_step_with_gradients_before_clipping(tmp_path):
    bpviz_cb, seen = BpvizCallback(), GradientsSeen()
    torch.manual_seed(0)
    _fit(tmp_path, nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), [bpviz_cb, seen])
    records = list(bpviz_cb.watcher.history.records)
    assert len(records) == 3  # six batches, two accumulated per optimizer step
    assert [layer.name for layer in records[0].layers] == ["net.0", "net.1", "net.2"]
    for record, expected, clipped in zip(records, seen.before_clip, seen.at_step):
        measured = {p.name: p.grad_norm for p in record.params}
        assert measured == pytest.approx(expected, rel=1e-5)
        assert measured["net.0.weight"] > 10 * clipped["net.0.weight"]  # clipping to 1e-3 happened after


def test_findings_reach_lightnings_warnings_and_logger(tmp_path):
    bpviz_cb = BpvizCallback()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(tmp_path, dead_unit_mlp(dead=6), [bpviz_cb])
    lines = [str(w.message) for w in caught if str(w.message).startswith("bpviz ")]
    assert any(line.startswith("bpviz error: dead_relu at net.1") for line in lines), lines
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    errors = [float(r["bpviz/errors"]) for r in rows if r.get("bpviz/errors")]
    assert errors and errors[-1] == sum(f.severity == "error" and f.active for f in bpviz_cb.watcher.findings)
    assert errors[-1] >= 1


def test_a_validation_is_kept_after_the_step_it_followed(tmp_path):
    bpviz_cb = BpvizCallback()
    trainer = _fit(tmp_path, nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), [bpviz_cb], validate=True)
    ((step, metrics),) = bpviz_cb.watcher.history.validation  # one epoch of six batches, validated at its end
    assert step == 2 and metrics["val_loss"] == pytest.approx(float(trainer.callback_metrics["val_loss"]))
    assert not [f for f in bpviz_cb.watcher.findings if f.kind == "train_mode_in_eval"]  # Lightning calls eval()


def test_the_model_is_left_unwatched_after_fit(tmp_path):
    bpviz_cb = BpvizCallback()
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    _fit(tmp_path, net, [bpviz_cb], steps=1)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
