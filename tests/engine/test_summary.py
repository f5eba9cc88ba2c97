"""The text `bpviz check` prints, from a hand-written report (no training involved)."""

from __future__ import annotations

from bpviz.engine.report.text import format_findings, format_layers, format_report


def layer(name: str, type_: str, **values) -> dict:
    entry = dict.fromkeys(
        (
            "units",
            "dead_units",
            "mean",
            "std",
            "min",
            "max",
            "saturated_fraction",
            "grad_norm",
            "param_grad_norm",
            "update_ratio",
        )
    )
    entry.update(name=name, type=type_, shape=[8, 4], zero_fraction=0.0)
    entry.update(values)
    return entry


REPORT = {
    "version": 1,
    "steps": 3,
    "loss": [1.5, 1.25, 0.875],
    "layers": [
        layer("fc1", "Linear", mean=0.125, std=1.5, grad_norm=0.00123, update_ratio=0.0042),
        layer("relu1", "ReLU", units=4, dead_units=3, zero_fraction=0.8125, mean=0.25, std=0.5, grad_norm=2.5e-07),
        layer("encoder.gate", "Sigmoid", shape=[8], saturated_fraction=0.5, mean=0.9, std=0.01),
    ],
    "findings": [
        {
            "kind": "dead_relu",
            "severity": "error",
            "layer": "relu1",
            "step": 2,
            "message": "3 of 4 units of relu1 (75%) are dead.",
            "explanation": "...",
            "remedies": ["Lower the learning rate.", "Use LeakyReLU."],
        },
        {
            "kind": "train_mode_in_eval",
            "severity": "warning",
            "layer": None,
            "step": None,
            "message": "Validation ran in training mode.",
            "explanation": "",
            "remedies": [],
        },
    ],
    "validation": [{"step": 2, "metrics": {"accuracy": 0.75, "loss": 0.6931}}],
}


def test_layer_table_columns_alignment_and_dashes():
    assert format_layers(REPORT["layers"]).splitlines() == [
        "layer         type     shape  units  dead  %zero   mean   std    sat  grad norm  update ratio",
        "------------  -------  -----  -----  ----  -----  -----  ----  -----  ---------  ------------",
        "fc1           Linear   8x4        -     -   0.0%  0.125   1.5      -   1.23e-03      4.20e-03",
        "relu1         ReLU     8x4        4     3  81.2%   0.25   0.5      -   2.50e-07             -",
        "encoder.gate  Sigmoid  8          -     -   0.0%    0.9  0.01  50.0%          -             -",
    ]


def test_findings_block_lists_severity_kind_layer_step_message_and_first_remedy():
    assert format_findings(REPORT["findings"]).splitlines() == [
        "findings (2):",
        "  ERROR   dead_relu at relu1, step 2",
        "          3 of 4 units of relu1 (75%) are dead.",
        "          fix: Lower the learning rate.",
        "  WARNING train_mode_in_eval",
        "          Validation ran in training mode.",
        "1 error, 1 warning",
    ]


def test_a_finding_that_held_over_several_steps_names_them_and_the_step_its_message_is_from():
    """The message is the latest step's: printed under "step 4" alone it read as what happened at step 4."""
    held = {**REPORT["findings"][0], "step": 4, "last_step": 17, "message": "The norm jumped to 9e20."}
    assert format_findings([held]).splitlines()[1:3] == [
        "  ERROR   dead_relu at relu1, steps 4–17",
        "          at step 17: The norm jumped to 9e20.",
    ]


def test_full_report_text():
    text = format_report(REPORT)
    assert text.startswith(
        "3 training steps\n"
        "loss: 1.5 at step 0, 0.875 at step 2\n"
        "validation after step 2: accuracy 0.75, loss 0.693\n"
        "\n"
        "layer "
    )
    assert "\n\nfindings (2):\n" in text
    assert text.endswith("1 error, 1 warning\n")


def test_non_finite_loss_is_named_with_its_first_step():
    text = format_report({**REPORT, "loss": [2.0, 1e9, None, None], "validation": []})
    assert "loss: 2 at step 0, not finite at step 3 (NaN/Inf from step 2)\n" in text


def test_empty_report():
    assert format_report({"version": 1, "steps": 0, "loss": [], "layers": [], "findings": [], "validation": []}) == (
        "0 training steps\n\nno layers were observed\n\nno findings\n"
    )


def test_infos_are_counted_only_when_present():
    info = {**REPORT["findings"][1], "severity": "info"}
    assert format_findings([info]).splitlines()[-1] == "0 errors, 0 warnings, 1 info"


def test_what_could_not_be_measured_is_listed_last():
    text = format_report({**REPORT, "unmeasured": ["encoder.attn: ValueError: odd tensor"]})
    assert text.endswith(
        "1 error, 1 warning\n\n"
        "not measured (training itself was unaffected; please report these): 1\n"
        "  encoder.attn: ValueError: odd tensor\n"
    )
