"""Regenerates step_into*.png and workbench*.png for the README (1600x1000 and 1280x800 screens), as a person would.

QT_QPA_PLATFORM=offscreen python resources/screenshots/debugger_shots.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QRect, Qt  # noqa: E402

from bpviz.gui.app import make_application  # noqa: E402
from bpviz.gui.window.main_window import MainWindow  # noqa: E402
from bpviz.gui.window.settings import Settings, ini_settings  # noqa: E402

HERE = Path(__file__).resolve().parent
STEPS_AFTER = 10  # steps trained after the remedy, in the workbench shot
app = make_application()


def wait(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")


def settle(window: MainWindow) -> None:
    window.redraw(force=True)
    for _ in range(20):
        app.processEvents()


def new_window(screen: tuple[int, int]) -> MainWindow:
    """A window fitted to a screen of this size, as it would open there."""
    settings = Settings(ini_settings(Path(tempfile.mkdtemp(prefix="bpviz-shots-")) / "settings.ini"))
    window = MainWindow(settings=settings, remember_layout=False)
    window.show()
    window.reset_layout(QRect(0, 0, *screen))
    return window


def open_and_run(window: MainWindow, sample: str, steps: int) -> None:
    window.open_path(ROOT / "sample_models" / sample)
    wait(lambda: window.controller.has_model)
    window.run_n(steps)
    wait(lambda: not window.controller.busy and window.shown_step == steps - 1)


def step_into_shot(screen: tuple[int, int], name: str) -> None:
    window = new_window(screen)
    open_and_run(window, "healthy_resnet.py", 8)
    tools = window.docks
    tools.network.set_metric("grad")
    backward = 0
    window.step_into()
    while True:
        wait(lambda: window.controller.paused_at is not None)
        event = window.controller.paused_at
        backward += event.phase == "backward"
        if backward == 8:
            break
        window.step_into()
    window.page.select_layer(event.layer)
    settle(window)
    window.grab().save(str(HERE / name))
    window.close()


def workbench_shot(screen: tuple[int, int], name: str) -> None:
    window = new_window(screen)
    open_and_run(window, "dying_relu.py", 6)
    tools = window.docks
    tools.workbench_dock.raise_()
    window.page.select_layer("relu2")
    settle(window)
    if not window.compact_layout:  # a taller dock row, so the workbench's table and plots have room
        window.resizeDocks([tools.network_dock], [500], Qt.Orientation.Vertical)
    wait(lambda: tools.workbench.table.rowCount() > 0)
    tools.workbench.reinit.click()
    wait(lambda: len(window.history.interventions) == 1)
    window.run_n(STEPS_AFTER)
    last = 5 + STEPS_AFTER
    wait(lambda: not window.controller.busy and window.shown_step == last)
    wait(lambda: tools.workbench.units_step == last)
    settle(window)
    window.grab().save(str(HERE / name))
    window.close()


SHOTS = {"": (1600, 1000), "_1280": (1280, 800)}  # file suffix: screen size

if __name__ == "__main__":
    for suffix, screen in SHOTS.items():
        step_into_shot(screen, f"step_into{suffix}.png")
        workbench_shot(screen, f"workbench{suffix}.png")
        for name in (f"step_into{suffix}.png", f"workbench{suffix}.png"):
            print(name, (HERE / name).stat().st_size // 1024, "KB")
