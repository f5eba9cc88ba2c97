"""A Hugging Face GPT-2 built from a small config (no download), trained with activation checkpointing as the
transformers docs recommend for memory (`activation_checkpointing_enable`, formerly
`gradient_checkpointing_enable`; reentrant), with AdamW on synthetic
token sequences in which each token follows from the one before.

Each block runs twice per step (a no-grad pass inside the model's forward, again in backward): a healthy
control whose every layer must read once, with the values of its forward pass.
"""

import torch
import torch.nn.functional as F
import transformers

VOCAB, CONTEXT = 64, 24


def sequences(generator: torch.Generator, batches: int, size: int = 16) -> list:
    """Token t[i] = (5 * t[i-1] + 3) mod VOCAB from a random start token."""
    data = []
    for _ in range(batches):
        tokens = torch.zeros(size, CONTEXT + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(VOCAB, (size,), generator=generator)
        for i in range(1, CONTEXT + 1):
            tokens[:, i] = (5 * tokens[:, i - 1] + 3) % VOCAB
        data.append((tokens[:, :-1], tokens[:, 1:]))
    return data


def next_token_loss(output, targets: torch.Tensor) -> torch.Tensor:
    logits = output.logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=CONTEXT, n_embd=64, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0
    )
    model = transformers.GPT2LMHeadModel(config)
    if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5
        model.activation_checkpointing_enable({"use_reentrant": True})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    return {
        "model": model,
        "train_data": sequences(generator, 8),
        "loss_fn": next_token_loss,
        "optimizer": torch.optim.AdamW(model.parameters(), lr=3e-3),
    }
