"""A healthy model is told it is healthy, with the checks that ran: which layers, which steps."""

from __future__ import annotations

from bpviz.engine.config import Config
from bpviz.engine.diagnosis.coverage import checks_run
from bpviz.engine.load.experiment import load_experiment
from bpviz.engine.record.history import History
from bpviz.engine.session.stepper import Stepper
from tests.gui import window_driver as driver
from tests.gui.record_factory import layer, record
from tests.gui.window_driver import SAMPLES, open_file, run_steps


def test_the_checks_name_the_layers_they_looked_at():
    stepper = Stepper(load_experiment(SAMPLES["dying_relu"], seed=0))
    try:
        for _ in range(3):
            stepper.step()
        checks = {c.kind: c for c in checks_run(stepper.history, Config())}
    finally:
        stepper.close()
    assert checks["dead_relu"].layers == ("relu1", "relu2") and checks["dead_relu"].steps == "steps 0–2"
    assert checks["vanishing_gradient"].layers == ("fc1", "fc2", "out")
    assert checks["nan_or_inf"].layers == ("fc1", "relu1", "fc2", "relu2", "out")
    assert not checks["saturated_activation"].applies and checks["saturated_activation"].layers == ()
    assert not checks["train_mode_in_eval"].applies  # no Dropout/BatchNorm, no validation


def test_a_healthy_model_says_no_problems_and_what_was_checked(qtbot, tmp_path):
    window = driver.make_window(qtbot, tmp_path / "settings.ini")
    open_file(qtbot, window, SAMPLES["healthy_resnet"])
    panel = window.page.findings_panel
    # before a step nothing was checked: no reassurance yet, only what the pane will hold
    said = "Findings appear here as the model trains: what is wrong, on which layer, since when."
    assert panel.explanation.toPlainText() == said
    run_steps(qtbot, window, 3)
    assert window.findings == []
    assert panel.title.text() == "Findings (none: no problems found)"
    text = panel.explanation.toPlainText()
    assert text.startswith("No problems found in 3 steps.")
    assert "NaN/Inf in outputs and gradients: " in text and "; steps 0–2" in text
    assert "dead ReLU units (no positive output for 3 steps): nothing in this model to check" in text  # GELU
    assert "dropout or BatchNorm in training mode during validation: no validation ran yet" in text
    first_layer = window.history.latest.layers[0].name
    assert first_layer in text
    window.close()


def test_the_healthy_summary_goes_when_a_finding_arrives(qtbot, tmp_path):
    window = driver.make_window(qtbot, tmp_path / "settings.ini")
    open_file(qtbot, window, SAMPLES["dying_relu"])
    panel = window.page.findings_panel
    run_steps(qtbot, window, 2)  # dead_relu needs 3 steps of silence: nothing yet
    assert panel.explanation.toPlainText().startswith("No problems found in 2 steps.")
    run_steps(qtbot, window, 1)
    assert [f.kind for f in window.findings] == ["dead_relu"]
    assert panel.selected() is None
    assert panel.explanation.toPlainText() == "Select a finding to see why it matters and what to try."
    window.close()


def test_the_checks_count_every_step_seen_not_only_the_records_kept():
    """A History keeps its last `max_steps` records (a recording's keeps one): the checks still cover every step."""
    history = History(max_steps=2)
    for step in range(5):
        history.append(record(step, [layer("fc1", 0), layer("relu1", 1, family="relu", units=4, dead=[])]))
    assert history.span() == (0, 5)
    checks = {c.kind: c for c in checks_run(history, Config(dead_window=3))}
    assert checks["nan_or_inf"].steps == "steps 0–4"
    assert checks["dead_relu"].steps == "steps 0–4"  # 5 steps seen: the window of 3 is full
    kept = history.before(3)
    assert kept.span() == (0, 3) and History().span() is None
