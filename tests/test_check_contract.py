"""The exit-code contract of `bpviz check` however a run ends: 0 clean, 1 findings, 2 could not run, 128+N a signal.

User code that calls sys.exit(), raises its own KeyboardInterrupt, breaks while its first batch is read, or a
model bpviz cannot measure: exit 2 in a few lines. Signals and --timeout keep the steps recorded so far. The
JSON report is written atomically, always, and never over the user's own file.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bpviz.cli import main

REPO = Path(__file__).resolve().parents[1]

# A small healthy model whose forward says which step it is in (on stderr, flushed) and can stop at one step.
MARKED = """
import sys, time
import torch
from torch import nn

STOP_AT = {stop_at}

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 2)
        self.calls = 0

    def forward(self, x):
        print(f"STEP {{self.calls}}", file=sys.stderr, flush=True)
        if self.calls == STOP_AT:
            {at_stop}
        self.calls += 1
        return self.fc(x)

def build():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 6, generator=g)
    return {{"model": Net(), "train_data": [(x, (x[:, 0] > 0).long())]}}
"""


def marked(stop_at: int, at_stop: str) -> str:
    return MARKED.format(stop_at=stop_at, at_stop=at_stop)


def write(tmp_path: Path, source: str, name: str = "exp.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def check(capsys, *arguments: str) -> tuple[int, str, str]:
    code = main(["check", *arguments])
    out, err = capsys.readouterr()
    return code, out, without_markers(err)


def without_markers(err: str) -> str:
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith("STEP "))


def bpviz_process(*arguments: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, "-m", "bpviz", "check", *arguments],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


# --- sys.exit(), argparse and KeyboardInterrupt from user code -------------------------------------------------------


@pytest.mark.parametrize(
    "call, shown",
    [
        ("sys.exit(0)", "sys.exit(0)"),
        ("sys.exit()", "sys.exit(None)"),
        ("sys.exit(1)", "sys.exit(1)"),
        ("sys.exit('bye')", "sys.exit('bye')"),
    ],
)
def test_sys_exit_in_build_is_the_files_failure_at_its_line(tmp_path, capsys, call, shown):
    path = write(tmp_path, f"import sys\n\ndef build():\n    {call}\n")
    report = tmp_path / "report.json"
    code, out, err = check(capsys, str(path), "--json", str(report))
    assert code == 2
    assert out == ""
    assert err.splitlines()[:3] == [
        f"build() called {shown} at exp.py:4",
        f"  where: {path}:4",
        "  why:   user code may not end bpviz's process: return from it or raise an exception instead",
    ]
    saved = json.loads(report.read_text())
    assert saved["steps"] == 0 and saved["error"]["what"] == f"build() called {shown} at exp.py:4"


def test_sys_exit_in_forward_keeps_the_steps_before(tmp_path, capsys):
    path = write(tmp_path, marked(2, "sys.exit(0)"))
    report = tmp_path / "report.json"
    code, out, err = check(capsys, str(path), "--json", str(report), "--steps", "5")
    assert code == 2
    assert out.startswith("2 training steps\n")
    line = line_of(path, "sys.exit(0)")
    assert err.splitlines()[0] == f"the forward pass at step 2 called sys.exit(0) at exp.py:{line}"
    assert json.loads(report.read_text())["steps"] == 2


def test_argparse_in_build_sees_only_the_files_own_path(tmp_path, capsys):
    path = write(
        tmp_path,
        """
        import argparse, torch
        from torch import nn

        def build():
            parser = argparse.ArgumentParser()
            parser.add_argument("--width", type=int, default=8)
            args = parser.parse_args()
            x = torch.randn(8, 3)
            return {"model": nn.Linear(3, args.width), "train_data": [(x, torch.zeros(8, dtype=torch.long))]}
    """,
    )
    code, out, err = check(capsys, str(path), "--steps", "2", "--seed", "3")
    assert (code, err) == (0, "")
    assert out.startswith("2 training steps\n")


def test_argparse_rejecting_its_command_line_is_told_as_the_files_failure(tmp_path, capsys):
    path = write(
        tmp_path,
        """
        import argparse

        def build():
            parser = argparse.ArgumentParser()
            parser.add_argument("--data", required=True)
            parser.parse_args()
    """,
    )
    code, out, err = check(capsys, str(path))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith("usage: exp.py")  # the file's own parser speaks, under the file's name
    assert "usage: bpviz" not in err
    assert lines[2] == f"build() called sys.exit(2) at exp.py:{line_of(path, 'parse_args')}"
    assert lines[4].startswith("  why:   argparse in the file rejected its command line")


def test_keyboard_interrupt_raised_by_build_is_a_failure_not_an_interruption(tmp_path, capsys):
    path = write(tmp_path, "def build():\n    raise KeyboardInterrupt\n")
    code, out, err = check(capsys, str(path))
    assert code == 2
    assert err.splitlines() == [
        "build() raised an exception",
        f"  where: {path}:2",
        "  why:   KeyboardInterrupt",
        "  (run with --verbose for the full traceback)",
    ]


# --- failures outside the findings ---------------------------------------------------------------------------------


def test_a_dataset_bug_in_the_first_item_exits_2_in_a_few_lines(tmp_path, capsys):
    path = write(
        tmp_path,
        """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, Dataset

        class Broken(Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return torch.randn(3), torch.tensor(0) + undefined_name

        def build():
            return {"model": nn.Linear(3, 2), "train_data": DataLoader(Broken(), batch_size=2)}
    """,
    )
    code, out, err = check(capsys, str(path))
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "reading the first batch of 'train_data' failed",
        f"  where: {path}:{line_of(path, 'undefined_name')}",
        "  why:   NameError: name 'undefined_name' is not defined",
        "  (run with --verbose for the full traceback)",
    ]


def test_an_iterable_whose_iter_raises_exits_2(tmp_path, capsys):
    path = write(
        tmp_path,
        """
        from torch import nn

        class Batches:
            def __iter__(self):
                raise OSError("the data folder is gone")

        def build():
            return {"model": nn.Linear(3, 2), "train_data": Batches()}
    """,
    )
    code, _, err = check(capsys, str(path))
    assert code == 2
    assert err.splitlines()[:3] == [
        "reading the first batch of 'train_data' failed",
        f"  where: {path}:{line_of(path, 'raise OSError')}",
        "  why:   OSError: the data folder is gone",
    ]


def test_a_spawn_dataloader_with_its_dataset_in_the_file_exits_2_saying_why(tmp_path, capsys):
    path = write(
        tmp_path,
        """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, Dataset

        class Local(Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return torch.randn(3), torch.tensor(0)

        def build():
            loader = DataLoader(Local(), batch_size=2, num_workers=1, multiprocessing_context="spawn")
            return {"model": nn.Linear(3, 2), "train_data": loader}
    """,
    )
    code, _, err = check(capsys, str(path))
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == "reading the first batch of 'train_data' failed"
    assert "define it in a module the experiment file imports, or use num_workers=0" in lines[2]
    assert "Traceback" not in err


def test_a_model_on_the_meta_device_exits_2(tmp_path, capsys):
    path = write(
        tmp_path,
        """
        import torch
        from torch import nn

        def build():
            with torch.device("meta"):
                model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
            x = torch.randn(8, 3)
            return {"model": model, "train_data": [(x, torch.zeros(8, dtype=torch.long))]}
    """,
    )
    code, _, err = check(capsys, str(path))
    assert code == 2
    assert err.splitlines() == [
        "the model is on the meta device",
        f"  where: {path}:5",
        "  why:   4 of its tensors (0.weight, ...) hold no data; build it on a real device, or call "
        "model.to_empty(device='cpu') and initialise its weights before returning it",
    ]


def test_a_failure_inside_bpviz_exits_2_with_the_steps_before(tmp_path, capsys, monkeypatch):
    import bpviz.engine.watcher as watcher

    real_mark = watcher.mark_dead_units

    def mark_dead_units(record, tracker):
        if record.step == 3:
            raise RuntimeError("cannot measure this")
        return real_mark(record, tracker)

    monkeypatch.setattr(watcher, "mark_dead_units", mark_dead_units)
    path = write(tmp_path, marked(-1, "pass"))
    report = tmp_path / "report.json"
    code, out, err = check(capsys, str(path), "--json", str(report))
    assert code == 2
    assert out.startswith("3 training steps\n")
    assert err.splitlines()[:3] == [
        "bpviz failed while measuring step 3 (if the file is not to blame, please report it)",
        f"  where: {Path(__file__)}:{line_of(Path(__file__), 'cannot measure this')}",
        "  why:   RuntimeError: cannot measure this",
    ]
    assert json.loads(report.read_text())["error"]["why"] == "RuntimeError: cannot measure this"


# --- the JSON report ------------------------------------------------------------------------------------------------


def test_json_onto_the_experiment_file_is_refused_before_anything_runs(tmp_path, capsys):
    path = write(tmp_path, marked(-1, "pass"))
    before = path.read_text()
    code, out, err = check(capsys, str(path), "--json", str(tmp_path / "." / "exp.py"))
    assert code == 2 and out == ""
    assert (
        err == f"refusing --json {tmp_path / '.' / 'exp.py'}: it is the experiment file, which the report would "
        "overwrite; choose another path\n"
    )
    assert path.read_text() == before


def test_a_failure_at_step_0_still_writes_the_report_with_the_error(tmp_path, capsys):
    path = write(tmp_path, marked(0, "raise ValueError('bad input')"))
    report = tmp_path / "report.json"
    code, out, _ = check(capsys, str(path), "--json", str(report))
    assert code == 2 and out == ""
    saved = json.loads(report.read_text())
    assert saved["steps"] == 0 and saved["layers"] == []
    assert saved["error"]["what"] == "the forward pass failed at step 0"
    assert saved["error"]["why"] == "ValueError: bad input"


def test_json_to_a_device_is_written_directly(tmp_path, capsys):
    path = write(tmp_path, marked(-1, "pass"))
    code, _, err = check(capsys, str(path), "--steps", "1", "--json", "/dev/null")
    assert (code, err) == (0, "")
    assert Path("/dev/null").is_char_device()


def test_a_full_disk_leaves_the_previous_report_intact(tmp_path):
    path = write(tmp_path, marked(-1, "pass"))
    report = tmp_path / "report.json"
    first = bpviz_process(str(path), "--steps", "2", "--json", str(report))
    assert first.wait(timeout=300) == 0
    previous = report.read_bytes()
    assert json.loads(previous)["steps"] == 2

    def small_disk():  # files may grow to a third of the earlier report; the kernel then refuses with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(previous) // 3, len(previous) // 3))

    second = bpviz_process(str(path), "--steps", "6", "--json", str(report), preexec_fn=small_disk)
    out, err = second.communicate(timeout=300)
    err = without_markers(err)
    assert second.returncode == 2
    assert out.startswith("6 training steps\n")  # the report is still printed
    assert err == f"cannot write the report to {report}: File too large (the previous report there is left as it was)\n"
    assert report.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.py", "report.json"]  # no temporary file left


# --- signals, time limit, leftover threads --------------------------------------------------------------------------


def wait_for_marker(process: subprocess.Popen, marker: str) -> list[str]:
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.strip() == marker:
            return seen
    raise AssertionError(f"the run ended before printing {marker!r}: {''.join(seen)}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_run_reports_the_steps_so_far(tmp_path, signum):
    path = write(tmp_path, marked(3, "time.sleep(600)"))
    report = tmp_path / "report.json"
    process = bpviz_process(str(path), "--steps", "40", "--json", str(report))
    wait_for_marker(process, "STEP 3")
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    err = without_markers(err)
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum
    assert out.startswith("3 training steps\n")
    assert err.splitlines() == [f"interrupted by {name}, after 3 completed step(s); they are in the report"]
    saved = json.loads(report.read_text())
    assert saved["steps"] == 3 and len(saved["loss"]) == 3
    assert saved["interrupted"] == {"reason": name, "step": 3, "seconds": None}


def test_timeout_bounds_a_build_that_never_returns(tmp_path):
    path = write(
        tmp_path,
        """
        import sys, time

        def build():
            print("BUILDING", file=sys.stderr, flush=True)
            while True:
                time.sleep(1)
    """,
    )
    report = tmp_path / "report.json"
    process = bpviz_process(str(path), "--timeout", "2", "--json", str(report))
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2
    assert out == ""
    assert err.splitlines() == [
        "BUILDING",
        "stopped: the run took longer than --timeout 2 s, after 0 completed step(s); they are in the report",
    ]
    assert json.loads(report.read_text())["interrupted"] == {"reason": "timeout", "step": 0, "seconds": 2.0}


def test_a_thread_that_never_ends_does_not_keep_the_process_alive(tmp_path):
    source = marked(-1, "pass").replace(
        "def build():",
        "import threading\nstuck = threading.Event()\n\ndef build():\n"
        "    threading.Thread(target=stuck.wait, daemon=False).start()",
    )
    path = write(tmp_path, source)
    process = bpviz_process(str(path), "--steps", "2")
    out, err = process.communicate(timeout=300)  # without the fix the process waits for the thread forever
    assert process.returncode == 0, err
    assert out.startswith("2 training steps\n")


def test_user_code_that_swallows_the_timeout_is_ended_after_the_grace_period(tmp_path):
    path = write(
        tmp_path,
        """
        import sys, time

        def build():
            print("BUILDING", file=sys.stderr, flush=True)
            while True:
                try:
                    time.sleep(100)
                except BaseException:  # swallows bpviz's interruption too
                    pass
    """,
    )
    report = tmp_path / "report.json"
    code = (
        "import sys\nimport bpviz.engine.session.interrupt as interrupt\ninterrupt.GRACE_S = 1.0\n"
        "from bpviz.cli import main\n"
        f"sys.exit(main(['check', {str(path)!r}, '--timeout', '1', '--json', {str(report)!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "BUILDING",
        "",
        "bpviz: the run did not stop within 1 s of its time limit; ending it",
        "stopped: the run took longer than --timeout 1 s, after 0 completed step(s); they are in the report",
    ]
    assert json.loads(report.read_text())["interrupted"]["reason"] == "timeout"


def test_json_through_a_symlink_replaces_the_file_it_points_at(tmp_path, capsys):
    path = write(tmp_path, marked(-1, "pass"))
    (tmp_path / "reports").mkdir()
    target = tmp_path / "reports" / "latest.json"
    target.write_text("{}")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    code, _, _ = check(capsys, str(path), "--steps", "1", "--json", str(link))
    assert code == 0
    assert link.is_symlink() and json.loads(target.read_text())["steps"] == 1
