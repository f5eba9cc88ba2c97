"""Run files under faults: kill -9 of the writer, a follower process, a full disk, a second writer, bad files."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import bpviz
from bpviz import cli
from bpviz.engine.runs import schema
from bpviz.engine.runs.errors import RunFileError
from tests.engine.run_files import seeded_run

ROOT = Path(__file__).resolve().parents[2]

# A user's own script: trains forever (or N steps), printing each step's loss and the writer's queue after w.step().
TRAINER = """
import sys, torch, torch.nn.functional as F
from torch import nn
import bpviz
path, steps, lockstep = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "lockstep"
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
with bpviz.watch(model, record=path) as w:
    for step in range(steps):
        if lockstep and sys.stdin.readline().strip() != "go":
            break
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        record = w.step(loss)
        if lockstep:
            w.recorder.writer.flush()
        print(step, repr(record.loss), w.recorder.writer._queue.qsize(), flush=True)
"""


def trainer(path: Path, steps: int, mode: str = "free", preexec=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", TRAINER, str(path), str(steps), mode],
        cwd=ROOT,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
    )


def test_kill_9_at_a_random_step_keeps_every_committed_step_intact(tmp_path):
    path = tmp_path / "killed.bpviz"
    kill_after = random.Random(os.getpid()).randint(3, 40)
    child = trainer(path, 10_000)
    losses = {}
    for _ in range(kill_after):
        step, loss, queued = child.stdout.readline().split()
        losses[int(step)] = float(loss)
    child.send_signal(signal.SIGKILL)
    child.wait()
    conn = sqlite3.connect(path)
    assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    conn.close()
    with bpviz.open_run(path) as run:
        steps = run.steps().tolist()
        assert steps == list(range(len(steps)))  # a prefix: nothing half-written, nothing skipped
        # lost at most what was still queued or in flight when the last line was printed
        assert len(steps) >= kill_after - 1 - int(queued), (kill_after, len(steps), queued)
        for step in steps[:kill_after]:
            assert run.record(step).loss == losses[step]
        assert run.status == "writer stopped"


def test_a_follower_process_sees_each_step_while_the_run_is_written(tmp_path):
    path = tmp_path / "followed.bpviz"
    child = trainer(path, 3, "lockstep")
    try:
        child.stdin.write("go\n")
        child.stdin.flush()
        child.stdout.readline()
        run = bpviz.open_run(path)
        assert run.status == "live" and len(run) == 1 and run.new_steps() == []
        for step in (1, 2):
            child.stdin.write("go\n")
            child.stdin.flush()
            assert int(child.stdout.readline().split()[0]) == step
            assert run.new_steps() == [step]
            assert run.record(step).step == step
    finally:
        child.stdin.close()
        assert child.wait() == 0
    assert run.status == "finished" and len(run) == 3
    run.close()


def _small_file_limit():
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-long write fails (EFBIG) instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))


def test_a_full_disk_stops_the_recording_with_one_warning_and_a_finding_while_training_goes_on(tmp_path):
    path = tmp_path / "full.bpviz"
    script = (
        TRAINER
        + """
import warnings
stopped = [f for f in w.findings if f.kind == "recording_stopped"]
print("trained", step + 1, "findings", len(stopped), "step", stopped[0].step if stopped else None, flush=True)
print(stopped[0].message if stopped else "", flush=True)
"""
    )
    child = subprocess.run(
        [sys.executable, "-W", "always", "-c", script, str(path), "40", "free"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        preexec_fn=_small_file_limit,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    words = lines[-2].split()
    assert words[:2] == ["trained", "40"] and words[2:4] == ["findings", "1"]
    failed_at = int(words[5])
    assert "stopped at step" in lines[-1] and "the disk refused a write" in lines[-1]
    assert child.stderr.count("RuntimeWarning") == 1 and "the disk refused a write" in child.stderr
    with bpviz.open_run(path) as run:
        assert 0 < len(run) == failed_at < 40
        assert run.record(failed_at - 1).step == failed_at - 1


def test_a_second_writer_on_a_live_run_is_refused(tmp_path):
    path = tmp_path / "busy.bpviz"
    child = trainer(path, 2, "lockstep")
    try:
        child.stdin.write("go\n")
        child.stdin.flush()
        child.stdout.readline()
        with pytest.raises(RunFileError) as error:
            seeded_run(path, steps=1)
        assert "another process is recording into it" in error.value.summary()
    finally:
        child.stdin.close()
        child.wait()


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.bpviz"
    text.write_text("these are my notes\n")
    other = tmp_path / "other.bpviz"
    sqlite3.connect(other).execute("create table t(x)").connection.commit()
    seeded_run(tmp_path / "good.bpviz", steps=20)
    data = (tmp_path / "good.bpviz").read_bytes()
    truncated = tmp_path / "truncated.bpviz"
    truncated.write_bytes(data[: len(data) // 2])
    corrupted = tmp_path / "corrupted.bpviz"
    page = int.from_bytes(data[16:18], "big")
    noise = bytes(random.Random(0).randrange(256) for _ in range(len(data) - 2 * page))
    corrupted.write_bytes(data[: 2 * page] + noise)
    newer = tmp_path / "newer.bpviz"
    newer.write_bytes(data)
    conn = sqlite3.connect(newer)
    conn.execute(f"pragma user_version = {schema.FORMAT_VERSION + 1}")
    conn.commit()
    conn.close()
    return {
        "text": (text, "it is not an SQLite database"),
        "other": (other, "not one bpviz recorded"),
        "truncated": (truncated, "truncated"),
        "corrupted": (corrupted, "damaged"),
        "newer": (
            newer,
            f"format version {schema.FORMAT_VERSION + 1}; this bpviz reads format versions up to "
            f"{schema.FORMAT_VERSION}",
        ),
        "missing": (tmp_path / "absent.bpviz", "does not exist"),
    }


@pytest.mark.parametrize("case", ["text", "other", "truncated", "corrupted", "newer", "missing"])
def test_a_bad_run_file_gives_a_few_clear_lines_and_exit_2(tmp_path, capsys, case):
    path, why = _bad_files(tmp_path)[case]
    capsys.readouterr()
    assert cli.main(["check", str(path)]) == cli.EXIT_COULD_NOT_RUN
    err = capsys.readouterr().err
    assert why in err and str(path) in err and "do:" in err
    assert "Traceback" not in err and len(err.splitlines()) <= 5
    assert cli.main(["compare", str(tmp_path / "good.bpviz"), str(path)]) == cli.EXIT_COULD_NOT_RUN


def test_a_run_file_without_read_permission_says_so(tmp_path, monkeypatch, capsys):
    seeded_run(tmp_path / "locked.bpviz", steps=1)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # root reads any file, so the refusal an ordinary user gets is simulated at the open call
    monkeypatch.setattr("bpviz.engine.runs.reader.open", denied, raising=False)
    assert cli.main(["check", str(tmp_path / "locked.bpviz")]) == cli.EXIT_COULD_NOT_RUN
    err = capsys.readouterr().err
    assert "permission denied" in err and "read access" in err
