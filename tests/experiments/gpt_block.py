"""A GPT-style decoder (token and position embeddings, pre-LayerNorm blocks of causal self-attention and a
GELU MLP, weight-tied head), built here from plain torch, trained with AdamW on synthetic token
sequences in which each token follows from the one before.

A healthy control: `bpviz check` must exit 0 on it.
"""

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, CONTEXT, WIDTH, HEADS, DEPTH = 64, 32, 64, 4, 2


class CausalSelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.proj = nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(n, length, HEADS, width // HEADS).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(n, length, width))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(WIDTH)
        self.attn = CausalSelfAttention()
        self.ln2 = nn.LayerNorm(WIDTH)
        self.fc = nn.Linear(WIDTH, 4 * WIDTH)
        self.proj = nn.Linear(4 * WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(VOCAB, WIDTH)
        self.wpe = nn.Embedding(CONTEXT, WIDTH)
        self.blocks = nn.Sequential(*(Block() for _ in range(DEPTH)))
        self.ln_f = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB, bias=False)
        self.head.weight = self.wte.weight  # weight tying, as GPT-2 does
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.blocks(self.wte(tokens) + self.wpe(positions))
        return self.head(self.ln_f(x))


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


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    model = GPT()
    return {
        "model": model,
        "train_data": sequences(generator, 8),
        "val_data": sequences(generator, 2),
        "loss_fn": next_token_loss,
        "optimizer": torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1),
    }
