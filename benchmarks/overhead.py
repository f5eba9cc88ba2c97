"""Training-step time with bpviz.watch attached at each level, over a plain step, on three workloads.

Plain and watched steps are interleaved in one run (plain, economy, full,
floor, anchors, the order rotated each round) on identical copies of each
model, so drift in the machine's speed and cold caches hit all alike; the
ratio of medians is printed per workload and level,
with bpviz's own measured share of the step time beside it and the share the
ratio implies (1 - plain / watched): when bpviz counts all it costs, the two agree.
Beside them, the floor: the same models with only the exact checks the economy
level never thins out, in the least Python a watcher can have (floor_contender),
the ratio below which no design of these checks in per-layer hooks can go.

    python benchmarks/overhead.py [--steps 30] [--warmup 5] [--only MLP] [--threads N] [--anchors] [--sized|--deep]

`--deep` times, instead, a deep narrow MLP (61 layers of width 64), where what a watcher pays per layer is
most of the cost. `--sized` times models of the real sizes built from their configs (no
download): a full-width ResNet-18 on 112x112 images, GPT-2 (124M) and BERT-base,
whose goal is 1.25x at the default level; their steps take about a second on two
cores, so fewer are timed.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import checkout  # noqa: F401  (before bpviz: this checkout's copy)
import torch
import torch.nn.functional as F
from torch import nn

import bpviz


def mlp():
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.ReLU(),
        *[m for _ in range(3) for m in (nn.Linear(512, 512), nn.ReLU())],
        nn.Linear(512, 10),
    )
    return model, torch.randn(128, 784), torch.randint(0, 10, (128,))


def cnn():
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    model = nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 64), nn.Flatten(), nn.Linear(64 * 16, 10))
    return model, torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 128)
        layer = nn.TransformerEncoderLayer(128, nhead=4, dim_feedforward=256, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def transformer():
    return Encoder(), torch.randn(32, 64, 16), torch.randint(0, 10, (32,))


WORKLOADS = {
    "MLP 784-512x4-10, batch 128": mlp,
    "BatchNorm CNN 3x32x32, batch 64": cnn,
    "Transformer encoder 4x d128 seq 64, batch 32": transformer,
}


def resnet18():
    """torchvision's ResNet-18 at its full width (the healthy control experiment's model, width 64), 1000 classes."""
    sys.path.insert(0, str(Path(checkout.ROOT) / "tests" / "experiments"))
    from resnet18 import ResNet18

    return ResNet18(width=64, classes=1000), torch.randn(8, 3, 112, 112), torch.randint(0, 1000, (8,))


def _token_loss(output, targets: torch.Tensor) -> torch.Tensor:
    logits = output.logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _class_loss(output, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output.logits, targets)


def gpt2():
    """GPT-2 small from its default config (12 layers, d768, 124M parameters), next-token loss, 64 tokens."""
    import transformers

    model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    tokens = torch.randint(0, model.config.vocab_size, (1, 65))
    return model, tokens[:, :-1], tokens[:, 1:], _token_loss


def bert():
    """BERT-base from its default config (12 layers, d768, 110M parameters), sequence classification, 2 x 64."""
    import transformers

    model = transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=2))
    return model, torch.randint(0, model.config.vocab_size, (2, 64)), torch.randint(0, 2, (2,)), _class_loss


def deep_narrow():
    """61 layers of width 64 (30 Linear-ReLU pairs and a head), batch 32: a step of little arithmetic, so what a
    watcher pays per layer in Python is most of what it costs."""
    body = [m for _ in range(29) for m in (nn.Linear(64, 64), nn.ReLU())]
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), *body, nn.Linear(64, 10))
    return model, torch.randn(32, 32), torch.randint(0, 10, (32,))


DEEP = {"Deep narrow MLP, 61 layers of width 64, batch 32": deep_narrow}

SIZED = {
    "ResNet-18 3x112x112, batch 8": resnet18,
    "GPT-2 124M, 64 tokens": gpt2,
    "BERT-base, 2 x 64 tokens": bert,
}


def timed_step(model, opt, x, y, after=None, loss_of=None) -> tuple[float, object]:
    """One training step's wall seconds, and what `after(loss)` (the watcher's step) returned.

    `loss_of(output, y)`: the workload's loss (cross-entropy of the output when None)."""
    start = time.perf_counter()
    loss = (loss_of or F.cross_entropy)(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    result = after(loss) if after is not None else None
    return time.perf_counter() - start, result


LEVELS = ("economy", "full")


class Contender:
    """One copy of the model trained side by side with the plain one, with what watches it."""

    def __init__(self, model: nn.Module, after=None, close=None) -> None:
        self.model = model
        self.opt = torch.optim.SGD(model.parameters(), lr=0.01)
        self.after = after  # called with the loss after each step
        self.close = close or (lambda: None)
        self.seconds: list[float] = []
        self.own: list[float] = []  # bpviz's own measured seconds per step (its records' overhead_s)


def bpviz_contender(model: nn.Module, level: str) -> Contender:
    watcher = bpviz.watch(model, level=level)
    return Contender(model, watcher.step, watcher.detach)


def measure(factory, steps: int, warmup: int, anchors: bool) -> tuple[float, dict[str, Contender]]:
    """The median plain step and, per contender, its step times (and bpviz's own seconds), interleaved."""
    torch.manual_seed(0)
    model, x, y, *loss_of = factory()
    loss_of = loss_of[0] if loss_of else None
    contenders = {level: bpviz_contender(copy.deepcopy(model), level) for level in LEVELS}
    contenders["floor"] = floor_contender(copy.deepcopy(model))
    if anchors:
        contenders.update(anchor_contenders(model))
    plain = Contender(model)
    everyone = [plain, *contenders.values()]
    for i in range(warmup + steps):
        # rotated each round: whoever follows the heaviest contender (an anchor) finds cold caches, and a fixed
        # order gave that to the plain step every time (the MLP's plain step 17 ms in one run, 10 in another)
        shift = i % len(everyone)
        for contender in everyone[shift:] + everyone[:shift]:
            seconds, record = timed_step(contender.model, contender.opt, x, y, contender.after, loss_of)
            if i >= warmup:
                contender.seconds.append(seconds)
                if record is not None and getattr(record, "overhead_s", None) is not None:
                    contender.own.append(record.overhead_s)
    for contender in contenders.values():
        contender.close()
    return statistics.median(plain.seconds), contenders


def floor_contender(model: nn.Module) -> Contender:
    """The least a watcher pays for what the economy level never thins out, in as little Python as it takes:
    the exact sum of every leaf module's output (NaN/Inf; a ReLU's is implied by its input's maxima) and of the
    gradient reaching it, each ReLU input's per-unit maximum (dead units), every parameter gradient's norm, and
    one transfer per step. No names, records or findings: a bound to read bpviz's ratio against, not a tool."""
    taken: list[torch.Tensor] = []
    relus = (nn.ReLU,)

    def unit_max(module, args) -> None:
        x = args[0].detach()
        taken.append(x.amax(dim=(0, *range(2, x.dim()))) if x.dim() >= 3 else x.reshape(-1, x.shape[-1]).amax(0))

    def output_sum(module, args, out) -> None:
        out = out[0] if isinstance(out, tuple) else out
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return
        if not isinstance(module, relus):
            taken.append(out.detach().sum().reshape(1))
        if out.requires_grad:
            out.register_hook(lambda grad: taken.append(grad.sum().reshape(1)))

    for module in model.modules():
        if not list(module.children()):
            if isinstance(module, relus):
                module.register_forward_pre_hook(unit_max)
            module.register_forward_hook(output_sum)

    def after(loss) -> None:
        with torch.no_grad():
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            norms = torch.stack(torch._foreach_norm(grads))
            torch.cat([*taken, norms, loss.detach().reshape(1)]).tolist()
        taken.clear()

    return Contender(model, after)


def anchor_contenders(model: nn.Module) -> dict[str, Contender]:
    """TensorBoard's add_histogram of every layer output and parameter gradient, and wandb.watch(log="all"),
    each on its own copy of the model, when installed; a missing one is said and skipped."""
    found = {}
    try:
        found["tensorboard"] = tensorboard_contender(copy.deepcopy(model))
    except ImportError as exc:
        print(f"tensorboard anchor skipped: {exc} (pip install bpviz[bench])")
    try:
        found["wandb"] = wandb_contender(copy.deepcopy(model))
    except ImportError as exc:
        print(f"wandb anchor skipped: {exc} (pip install bpviz[bench])")
    return found


def tensorboard_contender(model: nn.Module) -> Contender:
    import tempfile

    from torch.utils.tensorboard import SummaryWriter

    folder = tempfile.TemporaryDirectory()
    writer = SummaryWriter(folder.name)
    outputs: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if not list(module.children()):
            module.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out.detach()))
    step = [0]

    def after(loss):
        for name, out in outputs.items():
            writer.add_histogram(f"act/{name}", out, step[0])
        for name, param in model.named_parameters():
            if param.grad is not None:
                writer.add_histogram(f"grad/{name}", param.grad, step[0])
        step[0] += 1

    def close():
        writer.close()
        folder.cleanup()

    return Contender(model, after, close)


def wandb_contender(model: nn.Module) -> Contender:
    import os
    import tempfile

    import wandb

    folder = tempfile.TemporaryDirectory()
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(mode="offline", dir=folder.name, project="bpviz-overhead")
    run.watch(model, log="all", log_freq=1)

    def after(loss):
        run.log({"loss": loss.item()})

    def close():
        run.finish()
        folder.cleanup()

    return Contender(model, after, close)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", default="", help="run only the workloads whose name contains this text")
    parser.add_argument("--threads", type=int, default=0, help="torch's CPU threads (default: torch's choice)")
    parser.add_argument("--anchors", action="store_true", help="also time TensorBoard and wandb, when installed")
    parser.add_argument("--sized", action="store_true", help="time ResNet-18, GPT-2 and BERT-base at their sizes")
    parser.add_argument("--deep", action="store_true", help="time a deep narrow MLP: bpviz's cost per layer")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.steps} interleaved steps")
    print("share: bpviz's own measured seconds over its watched steps' seconds; implied: 1 - plain / watched")
    print("floor: the economy level's exact checks alone, in the least Python (see floor_contender)")
    header = "".join(f" {level + ' ms':>11} {'ratio':>6} {'share':>6} {'implied':>7}" for level in LEVELS) + "  floor"
    anchor_header = " anchors" if args.anchors else ""
    print(f"{'workload':46} {'plain ms':>9}{header}{anchor_header}")
    for name, factory in (SIZED if args.sized else DEEP if args.deep else WORKLOADS).items():
        if args.only.lower() not in name.lower():
            continue
        plain, contenders = measure(factory, args.steps, args.warmup, args.anchors)
        cells = ""
        for level in LEVELS:
            level_s = contenders[level]
            watched = statistics.median(level_s.seconds)
            share, implied = sum(level_s.own) / sum(level_s.seconds), 1 - plain / watched
            cells += f" {watched * 1e3:11.1f} {watched / plain:5.2f}x {100 * share:5.1f}% {100 * implied:6.1f}%"
        cells += f" {statistics.median(contenders['floor'].seconds) / plain:5.2f}x"
        for anchor in (a for a in contenders if a not in (*LEVELS, "floor")):
            cells += f" {anchor} {statistics.median(contenders[anchor].seconds) / plain:.2f}x"
        print(f"{name:46} {plain * 1e3:9.1f}{cells}")


if __name__ == "__main__":
    main()
