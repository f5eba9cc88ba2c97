"""The window opens the run files of a 2-rank gloo DDP job as one set: a rank selector and every rank at once.

The job is recorded in the test (two spawned gloo processes on 127.0.0.1,
rank 1's data scaled 50x from step 3). Expected gradient norms come from each
rank's own hooks on a copy of its model, not from bpviz's files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpviz.engine.distributed.run_set import rank_files
from tests.engine.ranks import recorded_drift, spawn
from tests.engine.run_files import seeded_run
from tests.gui.test_recordings import GRAD, table_values

LAST = 5


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("ddp")
    results = spawn(recorded_drift, folder)
    return folder / "job", results


def test_the_rank_files_name_their_set(job):
    folder, results = job
    files = {0: folder / "run.rank0.bpviz", 1: folder / "run.rank1.bpviz"}
    assert [Path(r["recorded"]) for r in results] == [files[0], files[1]]
    assert rank_files(files[1]) == files == rank_files(folder)
    assert rank_files(folder / "run.rank7.bpviz") == files  # any rank's name names the set
    alone = folder.parent / "alone.bpviz"
    seeded_run(alone, steps=2)
    assert rank_files(alone) == {} and rank_files(folder.parent) == {}


def combined(window) -> tuple[list[str], np.ndarray]:
    panel = window.rank_sets.panel
    return panel.layers, panel.values


def test_a_rank_file_opens_the_set_with_a_selector_and_every_ranks_gradients(qtbot, window, job):
    folder, results = job
    assert window.open_path(folder / "run.rank1.bpviz")
    qtbot.waitUntil(lambda: window.shown_step == LAST)
    panel = window.rank_sets.panel
    assert window.rank_sets.dock.isVisible()
    assert [panel.selector.itemText(i) for i in range(panel.selector.count())] == ["rank 0", "rank 1"]
    assert panel.selector.currentText() == "rank 1" and window.recording.path == folder / "run.rank1.bpviz"
    assert table_values(window, GRAD) == pytest.approx(results[1]["expected"][LAST], rel=1e-4)

    layers, values = combined(window)
    assert layers == ["fc1", "relu()", "fc2"]
    for rank in (0, 1):
        assert list(values[rank]) == pytest.approx([results[rank]["expected"][LAST][n] for n in layers], rel=1e-4)
    assert "Rank 1's output scale (RMS) at fc1" in panel.divergences.text()

    window.timeline.go_to(1)  # before the drift: the combined view follows the step shown, and no divergence yet
    qtbot.waitUntil(lambda: window.shown_step == 1)
    layers, values = combined(window)
    assert list(values[0]) == pytest.approx([results[0]["expected"][1][n] for n in layers], rel=1e-4)
    assert "No rank diverges" in panel.divergences.text()

    panel.selector.setCurrentIndex(0)
    panel.selector.activated.emit(0)  # the user picks rank 0: its run is viewed at the same step, the set stays
    qtbot.waitUntil(lambda: window.recording.path == folder / "run.rank0.bpviz" and window.shown_step == 1)
    assert table_values(window, GRAD) == pytest.approx(results[0]["expected"][1], rel=1e-4)
    assert window.rank_sets.dock.isVisible() and panel.selector.currentText() == "rank 0"
    window.timeline.go_to(LAST)
    qtbot.waitUntil(lambda: window.shown_step == LAST)
    assert table_values(window, GRAD) == pytest.approx(results[0]["expected"][LAST], rel=1e-4)


def test_the_folder_opens_the_set_at_rank_0_and_a_run_outside_it_closes_the_set(qtbot, window, job, tmp_path):
    folder, results = job
    assert window.open_path(folder)
    qtbot.waitUntil(lambda: window.shown_step == LAST)
    assert window.recording.path == folder / "run.rank0.bpviz"
    assert window.rank_sets.panel.selector.currentText() == "rank 0"
    other = tmp_path / "single.bpviz"
    seeded_run(other, steps=3)
    assert window.open_path(other)
    qtbot.waitUntil(lambda: window.shown_step == 2)
    assert not window.rank_sets.dock.isVisible() and window.rank_sets.set is None


def test_a_damaged_rank_file_is_named_and_the_window_goes_on(qtbot, window, tmp_path):
    seeded_run(tmp_path / "run.rank0.bpviz", steps=2)
    (tmp_path / "run.rank1.bpviz").write_text("not a database")
    assert not window.open_path(tmp_path / "run.rank0.bpviz")
    assert window.error_panel.isVisible() and "run.rank1.bpviz" in window.error_panel.text()
    assert window.recording is None and window.rank_sets.set is None
