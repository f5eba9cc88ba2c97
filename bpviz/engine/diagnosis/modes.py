"""train_mode_in_eval and eval_mode_in_training: dropout or BatchNorm in the wrong mode for what the forward is doing.

A forward without gradients is validation or inference; Dropout then drops
units at random and BatchNorm normalises by the batch and overwrites its
running statistics with validation data. The reverse, training through
eval-mode Dropout/BatchNorm, is often a forgotten `model.train()`, though
frozen BatchNorm can be deliberate, hence only a warning. Dropout inside a
layer (nn.MultiheadAttention, a stacked LSTM) counts like a Dropout module;
a Dropout of p=0 drops nothing and does not (observe/layer_kinds.mode_sensitive).
"""

from __future__ import annotations

from collections.abc import Iterator

from bpviz.engine.diagnosis.rule import Context, Observation

STATEFUL = False
TRAIN_IN_EVAL = "train_mode_in_eval"
EVAL_IN_TRAINING = "eval_mode_in_training"
KINDS = (TRAIN_IN_EVAL, EVAL_IN_TRAINING)
TRAIN_IN_EVAL_EXPLANATION = (
    "During validation or inference, Dropout in training mode randomly zeroes activations and BatchNorm "
    "normalises with the batch's own statistics and updates its running averages with validation data: "
    "metrics are noisy and too pessimistic, and the model itself changes."
)
TRAIN_IN_EVAL_REMEDIES = [
    "Call model.eval() before validating or predicting, and model.train() before training again.",
    "Wrap evaluation as: model.eval(); with torch.no_grad(): ...; model.train().",
]
EVAL_IN_TRAINING_EXPLANATION = (
    "Training steps ran through Dropout/BatchNorm left in eval mode: Dropout does not regularise and "
    "BatchNorm uses frozen running statistics. This is often a model.eval() without a matching "
    "model.train() after validation; freezing BatchNorm on purpose (fine-tuning) is the exception."
)
EVAL_IN_TRAINING_REMEDIES = [
    "Call model.train() at the start of every training epoch (after validation).",
    "If BatchNorm is frozen on purpose, you can ignore this warning.",
]


def check(ctx: Context) -> Iterator[Observation]:
    no_grad_training = [f for f in ctx.forwards if not f.grad_enabled and f.training_modules]
    if no_grad_training:
        modules = sorted({m for f in no_grad_training for m in f.training_modules})
        yield Observation(
            TRAIN_IN_EVAL,
            "error",
            modules[0],
            f"A forward without gradients (validation or inference) ran with {len(modules)} module(s) with dropout "
            f"or BatchNorm in training mode ({_names(modules)}): model.eval() was not called.",
            TRAIN_IN_EVAL_EXPLANATION,
            TRAIN_IN_EVAL_REMEDIES,
        )
    # a forward with grad enabled but no backward is a validation (model.eval() without no_grad), not training
    training_in_eval = [f for f in ctx.forwards if f.grad_enabled and f.backward and f.eval_modules]
    if training_in_eval and ctx.record is not None and ctx.record.backward_order:
        modules = sorted({m for f in training_in_eval for m in f.eval_modules})
        yield Observation(
            EVAL_IN_TRAINING,
            "warning",
            modules[0],
            f"Training steps ran with {len(modules)} module(s) with dropout or BatchNorm in eval mode "
            f"({_names(modules)}).",
            EVAL_IN_TRAINING_EXPLANATION,
            EVAL_IN_TRAINING_REMEDIES,
        )


def _names(modules: list[str], shown: int = 3) -> str:
    more = f", and {len(modules) - shown} more" if len(modules) > shown else ""
    return ", ".join(modules[:shown]) + more
