"""Runs of two gloo ranks on CPU for the torch.distributed tests: the workers and a spawner with a deadline.

The workers live here, in an importable module, because spawned processes
import their target by name. Each rank writes what it saw to a pickle in the
test's own folder; the tests judge those files, so a failed assertion never
happens inside a child where pytest cannot see it.
"""

from __future__ import annotations

import copy
import os
import pickle
import socket
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

import bpviz

WORLD = 2


def spawn(worker: Callable, folder: Path, world: int = WORLD, timeout: float = 240.0) -> list[dict]:
    """Run `worker(rank, world, folder)` on `world` gloo ranks; return each rank's results, or fail with its error."""
    context = mp.get_context("spawn")
    port = _free_port()
    processes = [context.Process(target=_entry, args=(worker, rank, world, port, folder)) for rank in range(world)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout)
    hung = [rank for rank, p in enumerate(processes) if p.is_alive()]
    for rank in hung:
        processes[rank].kill()
        processes[rank].join(10)
    results = []
    for rank in range(world):
        path = folder / f"rank{rank}.pkl"
        if not path.exists():
            raise AssertionError(
                f"rank {rank} wrote no result (hung: {hung}, exit codes {[p.exitcode for p in processes]})"
            )
        result = pickle.loads(path.read_bytes())
        if "error" in result:
            raise AssertionError(f"rank {rank} failed:\n{result['error']}")
        results.append(result)
    return results


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(worker: Callable, rank: int, world: int, port: int, folder: Path) -> None:
    import traceback

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        result = worker(rank, world, folder)
    except BaseException:
        result = {"error": traceback.format_exc()}
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    (folder / f"rank{rank}.pkl").write_bytes(pickle.dumps(result))


class Net(nn.Module):
    """Linear -> F.relu (a functional layer of the root) -> Linear: names the root's own calls too."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class Log(nn.Module):
    """log of its input: NaN where a value is negative."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


def rank_batch(rank: int, step: int, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Each rank's own batch, as a DistributedSampler would give: different per rank and step."""
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def independent_layers(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per layer, mean/std/min/max of the output and the norm of d(loss)/d(output), from plain hooks on a copy."""
    twin = copy.deepcopy(model)
    outputs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, args, out):
            out.retain_grad()
            outputs[name] = out

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in twin.named_modules() if n]
    real_relu = F.relu

    def relu(t, *args, **kwargs):  # the root's functional call, as bpviz names it
        out = real_relu(t, *args, **kwargs)
        out.retain_grad()
        outputs["relu()"] = out
        return out

    F.relu = relu
    try:
        F.cross_entropy(twin(x), y).backward()
    finally:
        F.relu = real_relu
        for handle in handles:
            handle.remove()
    return {
        name: {
            "mean": out.mean().item(),
            "std": out.std(unbiased=False).item(),
            "min": out.min().item(),
            "max": out.max().item(),
            "count": out.numel(),
            "grad_norm": out.grad.norm().item(),
        }
        for name, out in outputs.items()
    }


def ddp_training(rank: int, world: int, folder: Path) -> dict:
    """Three DDP steps under watch, recorded into a folder; each rank's own expectations from its copy; how many
    gathers bpviz made."""
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(Net())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gathers = []
    real_gather = dist.all_gather
    dist.all_gather = lambda *a, **k: gathers.append(1) or real_gather(*a, **k)
    steps = []
    with bpviz.watch(model, record=f"{folder}/runs/") as watcher:
        recorded = str(watcher.recorder.path)
        for step in range(3):
            x, y = rank_batch(rank, step)
            expected = independent_layers(model.module, x, y)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            record = watcher.step(loss)
            steps.append(
                {
                    "expected": expected,
                    "loss": loss.item(),
                    "measured": {
                        l.name: {"mean": l.mean, "std": l.std, "min": l.min, "max": l.max, "grad_norm": l.grad_norm}
                        for l in record.layers
                    },
                    "table": record.ranks,
                    "gathers": len(gathers),
                }
            )
    dist.all_gather = real_gather
    return {
        "steps": steps,
        "findings": [f.to_dict() for f in watcher.findings],
        "report": watcher.report(),
        "recorded": recorded,
    }


def _diverging(rank: int, model: nn.Module, steps: int, batch: Callable[[int], tuple]) -> dict:
    """Train `model` under DDP and watch for `steps` steps on `batch(step)`; the findings each rank holds."""
    model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with bpviz.watch(model) as watcher:
        for step in range(steps):
            x, y = batch(step)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            watcher.step(loss)
    return {"findings": [f.to_dict() for f in watcher.findings]}


def divergence(rank: int, world: int, folder: Path) -> dict:
    """Three scenarios: healthy ranks; rank 1's data scaled 50x from step 3 on; a NaN born on rank 1 at step 2."""
    torch.manual_seed(0)
    healthy = _diverging(rank, Net(), 6, lambda step: rank_batch(rank, step))

    def scaled(step):
        x, y = rank_batch(rank, step)
        return (x * 50.0 if rank == 1 and step >= 3 else x), y

    torch.manual_seed(0)
    drifted = _diverging(rank, Net(), 6, scaled)

    def poisoned(step):
        x, y = rank_batch(rank, step)
        x = x.abs() + 0.1
        if rank == 1 and step == 2:
            x[0, 0] = -1.0  # log(-1) is NaN in rank 1's first layer only
        return x, y

    torch.manual_seed(0)
    nan = _diverging(rank, nn.Sequential(Log(), nn.Linear(4, 3)), 3, poisoned)
    return {"healthy": healthy, "drifted": drifted, "nan": nan}


class RankShaped(Net):
    """Net, but rank 1 squashes its input with tanh first: a layer only one rank has, before all the others."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if dist.get_rank() == 1:
            x = torch.tanh(x)
        return super().forward(x)


def uneven_layers(rank: int, world: int, folder: Path) -> dict:
    """One DDP step where the ranks' layer lists differ: what each rank's own layers measured, and its table."""
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(RankShaped())
    with bpviz.watch(model) as watcher:
        x, y = rank_batch(rank, 0)
        F.cross_entropy(model(x), y).backward()
        record = watcher.step()
    return {"own": {l.name: l.std for l in record.layers}, "table": record.ranks}


def every_scenario(rank: int, world: int, folder: Path) -> dict:
    """All of the above in one launch: starting two processes costs more than the trainings."""
    return {
        "ddp": ddp_training(rank, world, folder),
        "fsdp2": fsdp2_training(rank, world, folder),
        "uneven": uneven_layers(rank, world, folder),
        **divergence(rank, world, folder),
    }


def fsdp2_training(rank: int, world: int, folder: Path) -> dict:
    """Two steps of a model sharded with FSDP2's fully_shard under watch: what each rank measured."""
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    net = Net()
    fully_shard(net.fc1)
    fully_shard(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    steps = []
    with bpviz.watch(net) as watcher:
        for step in range(2):
            x, y = rank_batch(rank, step)
            expected = independent_layers(_gathered_copy(net), x, y)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            shards = {n: p.grad.to_local().norm().item() for n, p in net.named_parameters()}
            full_grads = {n: p.grad.full_tensor().double() for n, p in net.named_parameters()}  # gathered here
            before = {n: p.full_tensor().detach().double() for n, p in net.named_parameters()}
            opt.step()
            after = {n: p.full_tensor().detach().double() for n, p in net.named_parameters()}
            record = watcher.step(loss)
            layer_sq = {  # the full parameters' norms of each layer, from the gathered tensors
                layer: {
                    what: sum(float(t[n].pow(2).sum()) for n in t if n.startswith(f"{layer}."))
                    for what, t in (("grad", full_grads), ("weight", after))
                }
                for layer in ("fc1", "fc2")
            }
            for layer in layer_sq:
                layer_sq[layer]["update"] = sum(
                    float((after[n] - before[n]).pow(2).sum()) for n in after if n.startswith(f"{layer}.")
                )
            steps.append(
                {
                    "expected": expected,
                    "measured": {
                        l.name: {
                            "mean": l.mean,
                            "std": l.std,
                            "grad_norm": l.grad_norm,
                            "param_grad_norm": l.param_grad_norm,
                            "weight_norm": l.weight_norm,
                            "update_ratio": l.update_ratio,
                        }
                        for l in record.layers
                    },
                    "shard_grads": shards,
                    "full_grads": {n: float(g.norm()) for n, g in full_grads.items()},
                    "full_weights": {n: float(w.norm()) for n, w in after.items()},
                    "full_numel": {n: p.numel() for n, p in net.named_parameters()},
                    "layer_sq": layer_sq,
                    "params": {p.name: (p.grad_norm, p.weight_norm, p.numel) for p in record.params},
                    "table": record.ranks,
                }
            )
    return {"steps": steps, "unmeasured": watcher.report()["unmeasured"]}


def _gathered_copy(net: nn.Module) -> Net:
    """A plain Net with the sharded model's full weights, for independent expectations."""
    plain = Net()
    plain.load_state_dict({n: p.full_tensor() for n, p in net.named_parameters()})
    return plain


def recorded_drift(rank: int, world: int, folder: Path) -> dict:
    """Six DDP steps recorded to `folder`/job/run.bpviz (one file per rank), rank 1's data scaled 50x from step 3;
    each rank's gradient norms per layer and step from the test's own hooks on a copy."""
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(Net())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    expected = []
    with bpviz.watch(model, record=folder / "job" / "run.bpviz") as watcher:
        for step in range(6):
            x, y = rank_batch(rank, step)
            if rank == 1 and step >= 3:
                x = x * 50.0
            expected.append({n: v["grad_norm"] for n, v in independent_layers(model.module, x, y).items()})
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            watcher.step(loss)
    return {"expected": expected, "recorded": str(watcher.recorder_path)}
