"""`BpvizCallback` for Lightning: `Trainer(callbacks=[BpvizCallback()])` watches the LightningModule.

Hook points: the module is watched from `on_fit_start` (under DDP Lightning
wraps it, and the callback watches the module itself, so layers keep their
names); parameter gradients are taken in `on_before_optimizer_step`, where
Lightning has accumulated and AMP-unscaled them but not yet clipped; a bpviz
step ends when an optimizer step did (`on_train_batch_end` once global_step
moved), so gradient accumulation makes one step, not several. Findings go to
Lightning's own logging: a rank-zero warning when one is raised or changes,
and `bpviz/errors`, `bpviz/warnings` logged with the module's metrics.
"""

from __future__ import annotations

from typing import Any

import torch

from bpviz.engine.config import Config
from bpviz.engine.watcher import Watcher, watch
from bpviz.integrations._findings_log import finding_counts, finding_line
from bpviz.integrations._requires import require

pl = require("lightning.pytorch", "lightning")
rank_zero = require("lightning.pytorch.utilities.rank_zero", "lightning")


class BpvizCallback(pl.Callback):
    """Watches the LightningModule during fit; `watch_options` (record=..., group=...) go to `bpviz.watch`."""

    def __init__(self, config: Config | None = None, log_metrics: bool = True, **watch_options: Any) -> None:
        super().__init__()
        self.config = config
        self.log_metrics = log_metrics
        self.watch_options = watch_options
        self.watcher: Watcher | None = None
        self._optimizer_steps = 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.watcher = watch(pl_module, self.config, **self.watch_options)
        self._optimizer_steps = trainer.global_step

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.watcher is not None:
            self.watcher.gradients_final(optimizer)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.watcher is None or trainer.global_step == self._optimizer_steps:
            return  # still accumulating: the optimizer has not stepped
        self._optimizer_steps = trainer.global_step
        self.watcher.step(_loss_of(outputs))
        for finding in self.watcher.changed_findings:
            rank_zero.rank_zero_warn(finding_line(finding))
        if self.log_metrics:
            pl_module.log_dict(finding_counts(self.watcher), on_step=True, on_epoch=False)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.watcher is not None:  # judge the validation forwards (model modes) apart from training
            self.watcher.record_validation({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.watcher is not None:  # a half-done step's measurements must not leak into a later fit
            self.watcher.discard_pending()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.watcher is not None:
            self.watcher.detach()


def _loss_of(outputs: Any) -> torch.Tensor | None:
    """The training_step's loss: the tensor itself or the dict's "loss"."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict):
        return outputs.get("loss")
    return None
