"""The text `bpviz check` prints: a per-layer table and the findings, from the report dict alone.

A pure function of the JSON-safe report, so what the terminal shows and what
`--json` writes cannot disagree, and it is testable without training anything.
"""

from __future__ import annotations

from collections.abc import Callable

from bpviz.engine.report.percent import percent_text


def _plain(value: object) -> str:
    return "-" if value is None else str(value)


def _shape(value: object) -> str:
    return "-" if not value else "x".join(str(d) for d in value)


def _percent(value: object) -> str:
    return "-" if value is None else percent_text(float(value))


def _general(value: object) -> str:
    return "-" if value is None else f"{float(value):.3g}"


def _scientific(value: object) -> str:
    return "-" if value is None else f"{float(value):.2e}"


# (header, report key, formatter, right-aligned)
_COLUMNS: list[tuple[str, str, Callable[[object], str], bool]] = [
    ("layer", "name", _plain, False),
    ("type", "type", _plain, False),
    ("shape", "shape", _shape, False),
    ("units", "units", _plain, True),
    ("dead", "dead_units", _plain, True),
    ("%zero", "zero_fraction", _percent, True),
    ("mean", "mean", _general, True),
    ("std", "std", _general, True),
    ("sat", "saturated_fraction", _percent, True),
    ("grad norm", "grad_norm", _scientific, True),
    ("update ratio", "update_ratio", _scientific, True),
]


def format_report(report: dict) -> str:
    """The whole `bpviz check` output: headline, loss, validation, layer table, findings and a verdict."""
    parts = [
        _headline(report),
        format_layers(report.get("layers", [])),
        format_findings(report.get("findings", [])),
        _unmeasured(report.get("unmeasured", [])),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _unmeasured(problems: list[str]) -> str:
    if not problems:
        return ""
    lines = [f"not measured (training itself was unaffected; please report these): {len(problems)}"]
    return "\n".join(lines + [f"  {problem}" for problem in problems])


def _headline(report: dict) -> str:
    lines = [f"{report.get('steps', 0)} training steps"]
    losses = report.get("loss", [])
    if losses:
        lines.append(f"loss: {_loss_story(losses)}")
    for entry in report.get("validation", []):
        metrics = ", ".join(f"{name} {_general(value)}" for name, value in entry["metrics"].items())
        lines.append(f"validation after step {entry['step']}: {metrics or 'no metrics'}")
    cost = report.get("cost") or {}
    if cost.get("share") is not None:
        lines.append(
            f"bpviz: {100 * cost['share']:.1f}% of step time ({cost['level']} level, "
            f"{cost['detailed_steps']} of {cost['steps']} steps detailed)"
        )
    return "\n".join(lines)


def _loss_story(losses: list[float | None]) -> str:
    """First and last loss, and the step it stopped being finite (null in the report) if it did."""
    first, last = losses[0], losses[-1]
    story = f"{_general(first) if first is not None else 'not finite'} at step 0"
    if len(losses) > 1:
        story += f", {_general(last) if last is not None else 'not finite'} at step {len(losses) - 1}"
    broken = next((step for step, value in enumerate(losses) if value is None), None)
    if broken is not None:
        story += f" (NaN/Inf from step {broken})"
    return story


def format_layers(layers: list[dict]) -> str:
    """A fixed-width table with one row per layer, in forward order; '-' where a value does not apply."""
    if not layers:
        return "no layers were observed"
    rows = [[fmt(layer.get(key)) for _, key, fmt, _ in _COLUMNS] for layer in layers]
    headers = [header for header, *_ in _COLUMNS]
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (*_, right) in zip(cells, widths, _COLUMNS)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def format_findings(findings: list[dict]) -> str:
    """One block per finding (severity, kind, layer, the steps it held, message and the first remedy), then a count."""
    if not findings:
        return "no findings"
    lines = [f"findings ({len(findings)}):"]
    for finding in findings:
        where = f" at {finding['layer']}" if finding.get("layer") else ""
        first, last = finding.get("step"), finding.get("last_step")
        message = finding["message"]
        since = f", step {first}" if first is not None else ""
        if first is not None and last is not None and last != first:
            # the message is the latest step's: said so, or "step 4" reads as the step it describes
            since, message = f", steps {first}–{last}", f"at step {last}: {message}"
        lines.append(f"  {finding['severity'].upper():<7} {finding['kind']}{where}{since}")
        lines.append(f"          {message}")
        if finding.get("remedies"):
            lines.append(f"          fix: {finding['remedies'][0]}")
    lines.append(_count(findings))
    return "\n".join(lines)


def _count(findings: list[dict]) -> str:
    """'1 error, 2 warnings' (infos only when there are some)."""
    severities = ("error", "warning", "info")
    counts = {severity: sum(1 for f in findings if f["severity"] == severity) for severity in severities}
    shown = [(severity, n) for severity, n in counts.items() if n or severity != "info"]
    return ", ".join(f"{n} {severity}{'' if n == 1 else 's'}" for severity, n in shown)
