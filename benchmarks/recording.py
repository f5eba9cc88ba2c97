"""What recording a run costs: step time with and without `record=`, bytes per step, opening and reading a long run.

Step time: watched steps with and without recording on identical copies of
overhead.py's MLP workload, in alternating blocks of steps (ABBA...), the
recorded block timed until its writer has committed every step of it; the
ratio of each pair of blocks, repeated (the median ratio is the figure).
Single steps interleaved with the other copy's understate the cost: the
writer thread's work on one recorded step lands on the plain step after it
(1.05-1.09x that way, 1.12-1.21x in blocks, on the same 2-core machine).
The writer's own time per step, in its thread, is printed beside, and
what SQLite alone takes of it: the statements of each step run again,
already encoded, into a fresh file. Size: bytes per step of a 60-layer and a
300-layer MLP at the default detail, trained on one batch and on a new batch
every step (per-unit maxima then change more: the harder case for the
differences from keyframes), over two keyframe spans.
Reading: a synthetic long run (recorded steps of the 60-layer model written
again under new step numbers) opened, then records read at random steps.

    python3 benchmarks/recording.py [--block 40] [--repeats 8] [--long-steps 10000]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import checkout  # noqa: F401  (before bpviz: this checkout's copy)
import torch
import torch.nn.functional as F
from overhead import mlp, timed_step
from torch import nn

import bpviz
from bpviz.engine.runs import schema
from bpviz.engine.runs.keyframes import KEYFRAME_EVERY
from bpviz.engine.runs.rows import RowWriter


def overhead(block: int, repeats: int, warmup: int, path: Path) -> tuple[list[float], list[float], list[float]]:
    """Per pair of blocks: the watched and the watched + recorded seconds per step, and the writer's CPU seconds
    per recorded step (time.thread_time inside its thread)."""
    torch.manual_seed(0)
    model, x, y = mlp()
    twin = copy.deepcopy(model)
    opts = [torch.optim.SGD(m.parameters(), lr=0.01) for m in (model, twin)]
    plain_watch, recorded_watch = bpviz.watch(model), bpviz.watch(twin, record=path.with_suffix(".bpviz"))
    writer = recorded_watch.recorder.writer
    cpu = _thread_seconds(writer)
    contenders = [(model, opts[0], plain_watch), (twin, opts[1], recorded_watch)]
    for _ in range(warmup):
        for model_, opt, watch in contenders:
            timed_step(model_, opt, x, y, watch.step)
    writer.flush()
    watched, recorded, writer_cpu = [], [], []
    for repeat in range(repeats):
        seconds = {}
        for model_, opt, watch in contenders if repeat % 2 == 0 else contenders[::-1]:  # ABBA
            before = cpu()
            start = time.perf_counter()
            for _ in range(block):
                timed_step(model_, opt, x, y, watch.step)
            if watch is recorded_watch:
                writer.flush()  # its block ends when the writer has caught up: what it owes is counted here
                writer_cpu.append((cpu() - before) / block)
            seconds[watch is recorded_watch] = (time.perf_counter() - start) / block
        watched.append(seconds[False])
        recorded.append(seconds[True])
    plain_watch.detach()
    recorded_watch.detach()
    return watched, recorded, writer_cpu


class _Logged:
    """A connection that keeps every statement the writer's jobs execute, to run them again elsewhere."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.log = conn, []

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        self.log.append((sql, tuple(params)))
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows) -> sqlite3.Cursor:
        rows = [tuple(row) for row in rows]
        self.log.extend((sql, row) for row in rows)
        return self.conn.executemany(sql, rows)


def sqlite_share(steps: int, warmup: int, folder: Path) -> tuple[float, float, float]:
    """What the writer's job costs a step (its thread's CPU), and what SQLite alone costs for the same rows: the
    statements each step's job executed, run again into a fresh file of the same schema and committed step by
    step, pre-encoded. Returns (job, SQLite's inserts and commit, the commit alone), CPU seconds a step."""
    torch.manual_seed(0)
    model, x, y = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    watch = bpviz.watch(model, record=folder / "share.bpviz")
    writer, jobs = watch.recorder.writer, []
    writer.submit = lambda step, job: jobs.append(job)  # kept, to be run here one by one
    for _ in range(warmup + steps):
        timed_step(model, opt, x, y, watch.step)
    conn, rows = writer._conn, writer._rows
    logged = rows.conn = _Logged(conn)
    job_cpu, statements = 0.0, []
    for n, job in enumerate(jobs):
        logged.log = []
        start = time.thread_time()
        with conn:
            job(rows)
        if n >= warmup:
            job_cpu += time.thread_time() - start
        statements.append(logged.log)
    replay = sqlite3.connect(folder / "replay.bpviz", isolation_level=None)
    replay.execute("PRAGMA journal_mode=WAL")
    replay.execute("PRAGMA synchronous=NORMAL")  # as the writer's
    replay.isolation_level = "DEFERRED"
    with replay:
        schema.create(replay)
    sql_cpu = commit_cpu = 0.0
    for n, step in enumerate(statements):
        start = time.thread_time()
        for sql, params in step:
            replay.execute(sql, params)
        before_commit = time.thread_time()
        replay.commit()
        if n >= warmup:
            sql_cpu += time.thread_time() - start
            commit_cpu += time.thread_time() - before_commit
    replay.close()
    watch.detach()
    return job_cpu / steps, sql_cpu / steps, commit_cpu / steps


def _thread_seconds(writer) -> Callable[[], float]:
    """The CPU seconds the writer's thread has used so far (Linux: its clock by thread id)."""
    clock = time.pthread_getcpuclockid(writer._thread.ident)
    return lambda: time.clock_gettime(clock)


def deep_mlp(layers: int) -> nn.Sequential:
    """`layers` observed layers: (Linear(64, 64), ReLU) pairs, then the head."""
    body = [m for _ in range(layers // 2 - 1) for m in (nn.Linear(64, 64), nn.ReLU())]
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), *body, nn.Linear(64, 10))


def record_deep(layers: int, steps: int, path: Path, fresh: bool = False, level: str = "economy") -> list:
    """Train the deep MLP while recording at `level`; `fresh`: a new random batch every step instead of one batch."""
    torch.manual_seed(0)
    model = deep_mlp(layers)
    x, y = torch.randn(128, 32), torch.randint(0, 10, (128,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    records = []
    with bpviz.watch(model, record=path, level=level) as w:
        for _ in range(steps):
            if fresh:
                x, y = torch.randn(128, 32), torch.randint(0, 10, (128,))
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            records.append(w.step(loss))
    return records


def long_run(records: list, steps: int, path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # a synthetic file: what is timed is reading it, not waiting on the disk
    with conn:
        schema.create(conn)
        conn.execute("INSERT INTO meta VALUES ('format_version', ?)", (str(schema.FORMAT_VERSION),))
    rows = RowWriter(conn)
    for step in range(steps):
        with conn:
            rows.step(dataclasses.replace(records[step % len(records)], step=step), {})
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--long-steps", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bpviz-bench-"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    watched, recorded, writer_cpu = overhead(args.block, args.repeats, args.warmup, folder / "overhead")
    ratios = [b / a for a, b in zip(watched, recorded)]
    for a, b, cpu in zip(watched, recorded, writer_cpu):
        print(
            f"MLP 784-512x4-10, batch 128: watched {a * 1e3:.2f} ms, watched+recorded {b * 1e3:.2f} ms a step, "
            f"ratio {b / a:.3f}x; the writer thread's CPU {cpu * 1e3:.2f} ms a step ({args.block}-step blocks)"
        )
    print(
        f"recording overhead: median ratio {statistics.median(ratios):.3f}x over {args.repeats} pairs of blocks "
        f"({min(ratios):.3f}x-{max(ratios):.3f}x); the writer's CPU: median {statistics.median(writer_cpu) * 1e3:.2f} "
        f"ms a step"
    )

    job, sql, commit = sqlite_share(200, args.warmup, folder)
    print(
        f"the writer's job alone, one step: {job * 1e3:.3f} ms of CPU; SQLite's inserts and commit of the same rows, "
        f"already encoded: {sql * 1e3:.3f} ms (the commit {commit * 1e3:.3f} ms); encoding: {(job - sql) * 1e3:.3f} ms"
    )

    sizes = {}
    steps = 2 * KEYFRAME_EVERY + 1
    for layers in (60, 300):
        for fresh in (False, True):
            path = folder / f"deep{layers}-{fresh}.bpviz"
            one = folder / f"deep{layers}-{fresh}-1.bpviz"
            records = record_deep(layers, steps, path, fresh)
            record_deep(layers, 1, one, fresh)
            sizes[layers, fresh] = (os.path.getsize(path) - os.path.getsize(one)) / (steps - 1)
            print(
                f"{layers}-layer MLP (width 64, {len(records[-1].layers)} layers recorded), "
                f"{'a new batch' if fresh else 'one batch'} each step: {sizes[layers, fresh]:,.0f} B "
                f"({sizes[layers, fresh] / 1024:.1f} KiB) per step"
            )
            if (layers, fresh) == (60, False):
                sixty = records
    print(f"100k steps of the 300-layer model: {max(sizes[300, f] for f in (False, True)) * 1e5 / 2**30:.1f} GiB")

    path = folder / "long.bpviz"
    start = time.perf_counter()
    long_run(sixty, args.long_steps, path)
    print(
        f"wrote a {args.long_steps}-step 60-layer run ({os.path.getsize(path) / 2**20:.0f} MiB) in "
        f"{time.perf_counter() - start:.0f} s"
    )
    start = time.perf_counter()
    run = bpviz.open_run(path)
    count = len(run)
    opened = time.perf_counter() - start
    start = time.perf_counter()
    run.loss_series(max_points=2000)
    run.layer_series(run.layer_names()[1], "grad_norm", max_points=2000)
    series = time.perf_counter() - start
    picks = random.Random(0).sample(range(count), min(args.reads, count))
    times = []
    for step in picks:
        t = time.perf_counter()
        run.record(step)
        times.append(time.perf_counter() - t)
    start = time.perf_counter()
    run.histograms(run.layer_names()[1], "activation", max_points=2000)
    hist = time.perf_counter() - start
    print(
        f"open: {opened * 1e3:.1f} ms; loss + one layer's series at 2000 points: {series * 1e3:.1f} ms; "
        f"one layer's histograms at 2000 points: {hist * 1e3:.0f} ms"
    )
    print(
        f"random step read: median {statistics.median(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms "
        f"({len(times)} reads)"
    )
    run.close()


if __name__ == "__main__":
    main()
