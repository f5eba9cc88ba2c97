"""An LSTM language model as in pytorch/examples word_language_model (embedding, dropout, a two-layer
LSTM, dropout, a linear decoder over a 2000-word vocabulary), built here from plain torch, trained with
plain SGD at the example's learning rate of 20 on synthetic text where each word predicts the next.

A healthy control: `bpviz check` must exit 0 on it.
"""

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, EMBED, HIDDEN, LENGTH = 2000, 64, 64, 20


class RNNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(VOCAB, EMBED)
        self.rnn = nn.LSTM(EMBED, HIDDEN, 2, dropout=0.2, batch_first=True)
        self.decoder = nn.Linear(HIDDEN, VOCAB)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(self.drop(self.encoder(tokens)))
        return self.decoder(self.drop(output))


def text(generator: torch.Generator, batches: int, size: int = 16) -> list:
    """Word w is followed by (7 * w + 3) mod VOCAB nine times in ten, by a random word otherwise."""
    data = []
    for _ in range(batches):
        words = torch.zeros(size, LENGTH + 1, dtype=torch.long)
        words[:, 0] = torch.randint(VOCAB, (size,), generator=generator)
        for i in range(1, LENGTH + 1):
            follow = (7 * words[:, i - 1] + 3) % VOCAB
            noise = torch.randint(VOCAB, (size,), generator=generator)
            words[:, i] = torch.where(torch.rand(size, generator=generator) < 0.9, follow, noise)
        data.append((words[:, :-1], words[:, 1:]))
    return data


def next_word_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def build() -> dict:
    generator = torch.Generator().manual_seed(0)
    model = RNNModel()
    return {
        "model": model,
        "train_data": text(generator, 8),
        "val_data": text(generator, 2),
        "loss_fn": next_word_loss,
        "optimizer": torch.optim.SGD(model.parameters(), lr=20.0),
    }
