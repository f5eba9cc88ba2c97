"""A tiny Hugging Face Trainer run (GPT-2 built from a config, nothing downloaded) with BpvizCallback."""

from __future__ import annotations

import logging

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from bpviz.integrations.transformers import BpvizCallback  # noqa: E402


class Seen(transformers.TrainerCallback):
    """Independent record of the gradients where the Trainer hands them over, and of the logs after bpviz's."""

    def __init__(self) -> None:
        self.grads: list[dict[str, float]] = []
        self.logs: list[dict] = []
        self.evaluations: list[dict] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads.append({n: p.grad.norm().item() for n, p in model.named_parameters() if p.grad is not None})

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.evaluations.append(dict(metrics))

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def _train(tmp_path, callbacks: list, poison: bool = False, steps: int = 3):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=40, n_positions=16)
    model = transformers.GPT2LMHeadModel(config)
    if poison:
        with torch.no_grad():
            model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 40, (24, 12), generator=g)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=steps,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_grad_norm=0.0,  # no clipping: the gradients judged are the ones the optimizer uses
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        eval_strategy="steps",
        eval_steps=steps,  # one evaluation, after the last step
        per_device_eval_batch_size=8,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=rows, eval_dataset=rows[:8], callbacks=callbacks
    )
    trainer.train()
    return model


def test_one_step_per_optimizer_step_with_the_optimizers_gradients(tmp_path):
    bpviz_cb, seen = BpvizCallback(), Seen()
    model = _train(tmp_path, [bpviz_cb, seen])
    records = list(bpviz_cb.watcher.history.records)
    assert len(records) == 3
    names = [layer.name for layer in records[0].layers]
    assert "transformer.h.0.mlp.c_fc" in names and "lm_head" in names
    for record, expected in zip(records, seen.grads):
        measured = {p.name: p.grad_norm for p in record.params if p.grad_norm is not None}
        assert measured == pytest.approx(expected, rel=1e-5)
    logged = [log["loss"] for log in seen.logs if "loss" in log]
    assert [r.loss for r in records] == pytest.approx(logged, rel=1e-3)  # as the Trainer forms the step's loss
    ((step, metrics),) = bpviz_cb.watcher.history.validation  # the evaluation's forwards are no training step
    assert step == 2 and metrics["eval_loss"] == pytest.approx(seen.evaluations[0]["eval_loss"])
    assert all(not m._forward_hooks for m in model.modules())  # detached at the end of training


def test_findings_reach_transformers_logging_and_logs(tmp_path):
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("transformers.bpviz")
    logger.addHandler(handler)
    try:
        bpviz_cb, seen = BpvizCallback(), Seen()
        _train(tmp_path, [bpviz_cb, seen], poison=True, steps=2)
    finally:
        logger.removeHandler(handler)
    assert any(line.startswith("bpviz error: nan_or_inf at transformer.h.0.mlp.c_fc, step 0") for line in lines), lines
    assert seen.logs[0]["bpviz/errors"] >= 1
