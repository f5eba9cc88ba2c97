"""Regenerates followed_run.png, scrubbed_run.png and compared_runs.png for the README: the window on run files.

    QT_QPA_PLATFORM=offscreen python resources/screenshots/run_shots.py

The recordings are made as a user makes them, with `bpviz check FILE --record`;
the followed one is still being written by that process while it is shot.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from debugger_shots import HERE, SHOTS, app, new_window, settle, wait  # noqa: E402

import bpviz  # noqa: E402
from bpviz.engine.runs.errors import RunFileError  # noqa: E402

SAMPLES = ROOT / "sample_models"
FOLDER = Path(tempfile.mkdtemp(prefix="bpviz-run-shots-"))


def record(sample: str, steps: int) -> Path:
    path = FOLDER / f"{Path(sample).stem}.bpviz"
    subprocess.run(
        [sys.executable, "-m", "bpviz", "check", str(SAMPLES / sample), "--steps", str(steps), "--record", str(path)],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )
    return path


def shoot(window, name: str) -> None:
    settle(window)
    window.grab().save(str(HERE / name))
    print(f"saved {HERE / name}")
    window.close()


def followed() -> None:
    path = FOLDER / "training.bpviz"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bpviz",
            "check",
            str(SAMPLES / "vanishing_sigmoid.py"),
            "--steps",
            "100000",
            "--record",
            str(path),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait(lambda: path.exists() and _steps(path) >= 5, 120)
        window = new_window(SHOTS[""])
        window.open_path(path)
        wait(lambda: window.shown_step is not None and window.shown_step >= 40, 120)
        window.page.select_worst()
        shoot(window, "followed_run.png")
    finally:
        writer.kill()
        writer.wait()


def scrubbed() -> None:
    window = new_window(SHOTS[""])
    window.open_path(record("dying_relu.py", 60))
    window.page.select_layer("relu2")
    window.timeline.go_to(3)  # back to where relu2 was dying, not yet dead
    shoot(window, "scrubbed_run.png")


def compared() -> None:
    window = new_window(SHOTS[""])
    window.open_path(record("dying_relu.py", 60))
    window.compare_with(record("dying_relu_fixed.py", 60))
    window.page.select_layer("relu2")
    shoot(window, "compared_runs.png")


def _steps(path: Path) -> int:
    try:
        with bpviz.open_run(path) as run:
            return len(run)
    except RunFileError:
        return 0  # created, not yet a readable run


if __name__ == "__main__":
    followed()
    scrubbed()
    compared()
    app.quit()
