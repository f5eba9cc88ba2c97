"""`BpvizCallback` for the Hugging Face Trainer: `Trainer(..., callbacks=[BpvizCallback()])` watches the model.

Hook points: the model is watched from `on_train_begin`; parameter gradients
are taken in `on_pre_optimizer_step`, where accelerate has accumulated and
unscaled them (after clipping, which the Trainer does first); a bpviz step
ends at `on_step_end`, with the step's loss made from the micro-batches' as
the Trainer makes it: their sum where the model was given the step's token
count (`num_items_in_batch`, each loss already a share of the whole), else
their mean. Findings go to transformers' logger on the main
process when raised or changed, and their counts into the Trainer's `logs`
(`on_log`) for the reporters that come after this callback.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bpviz.engine.config import Config
from bpviz.engine.watcher import Watcher, watch
from bpviz.integrations._findings_log import finding_counts, finding_line
from bpviz.integrations._requires import require

transformers = require("transformers", "transformers")
logger = transformers.utils.logging.get_logger("transformers.bpviz")  # follows transformers' verbosity


class BpvizCallback(transformers.TrainerCallback):
    """Watches the Trainer's model; `watch_options` (record=..., group=...) go to `bpviz.watch`."""

    def __init__(self, config: Config | None = None, **watch_options: Any) -> None:
        self.config = config
        self.watch_options = watch_options
        self.watcher: Watcher | None = None
        self._losses: list[torch.Tensor] = []
        self._shares = False  # the micro-batch losses are shares of the step's (they add up)
        self._loss_hook = None

    def on_train_begin(self, args, state, control, model: nn.Module | None = None, **kwargs) -> None:
        if model is None or self.watcher is not None:
            return
        self.watcher = watch(model, self.config, **self.watch_options)
        self._loss_hook = model.register_forward_hook(self._keep_loss, with_kwargs=True)

    def _keep_loss(self, module: nn.Module, args, kwargs, output) -> None:
        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        if isinstance(loss, torch.Tensor) and torch.is_grad_enabled():
            self._losses.append(loss.detach().float().reshape(-1)[:1])
            self._shares = kwargs.get("num_items_in_batch") is not None

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs) -> None:
        if self.watcher is not None and optimizer is not None:
            self.watcher.gradients_final(optimizer)

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if self.watcher is None:
            return
        losses, self._losses = self._losses, []
        loss = None
        if losses:
            total = torch.cat(losses).sum()
            loss = total if self._shares else total / len(losses)
        self.watcher.step(loss)
        if state.is_world_process_zero:
            for finding in self.watcher.changed_findings:
                log = logger.error if finding.severity == "error" else logger.warning
                log(finding_line(finding))

    def on_log(self, args, state, control, logs: dict | None = None, **kwargs) -> None:
        if self.watcher is not None and logs is not None:
            logs.update(finding_counts(self.watcher))

    def on_evaluate(self, args, state, control, metrics: dict | None = None, **kwargs) -> None:
        if self.watcher is not None:  # judge the evaluation forwards (model modes) apart from training
            self._losses.clear()
            self.watcher.record_validation({k: float(v) for k, v in (metrics or {}).items() if _is_number(v)})

    def on_train_end(self, args, state, control, **kwargs) -> None:
        if self.watcher is not None:
            self.watcher.detach()
        if self._loss_hook is not None:
            self._loss_hook.remove()
            self._loss_hook = None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
