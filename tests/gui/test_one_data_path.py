"""One data path: what the window shows while it trains is read from the run file its experiment process records,
so the same file opened afterwards as a recording shows exactly the same run."""

from __future__ import annotations

from tests.engine.run_files import assert_same
from tests.gui.window_driver import LOAD_MS, SAMPLES, open_file, run_steps


def test_the_trained_run_and_its_recording_show_the_same_records_marks_validations_and_findings(qtbot, window):
    open_file(qtbot, window, SAMPLES["forgot_eval"])
    run_steps(qtbot, window, 2)
    with qtbot.waitSignal(window.validated, timeout=LOAD_MS):
        window.actions_.validate.trigger()
    assert window.controller.apply_remedy("lower_lr", 10.0)
    qtbot.waitUntil(lambda: len(window.history.interventions) == 1, timeout=LOAD_MS)  # marked before the next step
    run_steps(qtbot, window, 2)
    live = window.viewed
    assert [r.step for r in live.history.records] == [0, 1, 2, 3] and len(live.history.validation) == 1
    assert live.history.interventions == [(2, "lr 0.05 -> 0.005")]
    assert live.findings  # forgot_eval's validation leaves Dropout in eval mode: a finding
    run_path = window.controller.run_path

    assert window.open_recording(run_path)  # the same file, now as a recording
    replay = window.viewed
    assert replay is not live and window.recording is not None
    stored = [window.recording.playback.view_at(r.step).history.latest for r in live.history.records]
    assert_same(list(live.history.records), stored, "records")  # each step as the timeline shows it
    assert replay.history.latest.step == 3
    assert_same(live.history.losses, replay.history.losses, "losses")
    assert live.history.loss_steps == replay.history.loss_steps
    assert live.history.validation == replay.history.validation
    assert live.history.interventions == replay.history.interventions
    assert [(f.kind, f.layer, f.severity, f.step) for f in live.findings] == [
        (f.kind, f.layer, f.severity, f.step) for f in replay.findings
    ]
