"""`bpviz compare A B`: the first step and layer where two runs part, and the findings one has that the other lacks.

Both files are attached to one SQLite connection and the first differing
(step, layer) is found by one ordered query, so comparing two long runs
reads rows, not records, and stops at the first difference. Two values
differ when |a - b| > rtol * max(|a|, |b|) + atol, or when only one is
missing; the statistic named is the first differing one in the layer's
field order (forward statistics, then gradients, then the update).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.runs.branches import MAIN, show_branch
from bpviz.engine.runs.errors import RunFileError
from bpviz.engine.runs.reader import SERIES_FIELDS, Run, open_run

FIELDS = tuple(f for f in SERIES_FIELDS if f != "order")
RTOL, ATOL = 1e-6, 1e-12


def compare_files(
    a: str | Path, b: str | Path | None = None, rtol: float = RTOL, atol: float = ATOL, branch: Sequence[int] = ()
) -> dict:
    """compare_runs on two paths, or on two branches of one (RunFileError when a file or branch cannot be read).

    `branch` names the branches compared: none, one or two. Two files: branch 1 of each, `[n]` branch n of each,
    `[m, n]` A's m and B's n. One file: branch 1 with its latest branch, `[n]` branch 1 with n, `[m, n]` m with n.
    """
    if len(branch) > 2:
        raise ValueError(f"compare takes at most two branches, got {len(branch)}")
    if b is None:
        with open_run(a) as run:
            known = run.branches()
        if len(branch) < 2 and len(known) < 2:
            raise RunFileError(
                "nothing to compare the run with",
                a,
                "it has one branch (it was never rewound)",
                "give a second run file",
            )
        chosen = tuple(branch) if len(branch) == 2 else (MAIN, branch[0] if branch else known[-1].id)
        b = a
    else:
        chosen = tuple(branch) if len(branch) == 2 else (branch or (MAIN,)) * 2
    with open_run(a, chosen[0]) as run_a, open_run(b, chosen[1]) as run_b:
        return compare_runs(run_a, run_b, rtol, atol)


def compare_runs(a: Run, b: Run, rtol: float = RTOL, atol: float = ATOL) -> dict:
    """JSON-safe comparison: step counts, the first divergence (or None), and the findings that differ."""
    conn = sqlite3.connect("file::memory:", uri=True)
    try:
        for alias, run in (("a", a), ("b", b)):
            conn.execute(f"ATTACH DATABASE ? AS {alias}", (f"file:{quote(str(run.path.resolve()))}?mode=ro",))
            show_branch(conn, run.branch, schema=alias, prefix=f"{alias}_")  # a_steps: run A's branch's steps
        divergence = _first_divergence(conn, rtol, atol)
    finally:
        conn.close()
    names_a, names_b = a.layer_names(), b.layer_names()
    in_a, in_b = set(names_a), set(names_b)
    only_a, only_b, changed = _finding_differences(a.findings, b.findings, in_a, in_b)
    steps = {"a": len(a), "b": len(b)}
    layers_a = [n for n in names_a if n not in in_b]  # layers are compared by name: these never are
    layers_b = [n for n in names_b if n not in in_a]
    same = divergence is None and not (only_a or only_b or changed or layers_a or layers_b) and steps["a"] == steps["b"]
    return {
        "a": _name(a),
        "b": _name(b),
        "rtol": rtol,
        "atol": atol,
        "steps": steps,
        "divergence": divergence,
        "findings_only_in_a": only_a,
        "findings_only_in_b": only_b,
        "findings_that_differ": changed,
        "layers_only_in_a": layers_a,
        "layers_only_in_b": layers_b,
        "same": same,
    }


def _name(run: Run) -> str:
    """The file, and the branch when it is not the run as first trained."""
    return str(run.path) if run.branch == MAIN else f"{run.path} (branch {run.branch})"


def _differs(x: str, y: str) -> str:
    return f"(({x} IS NULL) != ({y} IS NULL) OR abs({x} - {y}) > :rtol * max(abs({x}), abs({y})) + :atol)"


def _first_divergence(conn: sqlite3.Connection, rtol: float, atol: float) -> dict | None:
    args = {"rtol": rtol, "atol": atol}
    loss = conn.execute(
        "SELECT x.step, x.loss, y.loss FROM a_steps x JOIN b_steps y USING (step) "
        f"WHERE {_differs('x.loss', 'y.loss')} "
        "ORDER BY x.step LIMIT 1",
        args,
    ).fetchone()
    joined = (
        "FROM a_layer_steps x JOIN a.layers la ON la.layer_id = x.layer_id JOIN b.layers lb ON lb.name = la.name "
        "JOIN b_layer_steps y ON y.layer_id = lb.layer_id AND y.step = x.step"
    )
    condition = " OR ".join(_differs(f'x."{f}"', f'y."{f}"') for f in FIELDS)
    row = conn.execute(f"SELECT x.step {joined} WHERE {condition} ORDER BY x.step LIMIT 1", args).fetchone()
    if row is not None and (loss is None or row[0] <= loss[0]):
        columns = ", ".join(f'x."{f}", y."{f}"' for f in FIELDS)
        sql = f"SELECT la.name, {columns} {joined} WHERE x.step = ? ORDER BY x.seq"
        layers = conn.execute(sql, (row[0],)).fetchall()
        return _first_in_step(row[0], layers, rtol, atol)
    if loss is not None:
        return {"step": loss[0], "layer": None, "statistic": "loss", "a": _plain(loss[1]), "b": _plain(loss[2])}
    return None


def _first_in_step(step: int, layers: list[tuple], rtol: float, atol: float) -> dict | None:
    """The earliest difference within a step in the order it was computed: forward in layer order, backward in
    reverse layer order, then the update."""
    phases = [(_FORWARD, layers), (_BACKWARD, layers[::-1]), (_UPDATE, layers)]
    for fields, ordered in phases:
        for name, *values in ordered:
            for field in fields:
                index = FIELDS.index(field)
                va, vb = values[2 * index], values[2 * index + 1]
                if _values_differ(va, vb, rtol, atol):
                    return {"step": step, "layer": name, "statistic": field, "a": _plain(va), "b": _plain(vb)}
    return None


_BACKWARD = tuple(f for f in FIELDS if f.startswith(("grad_", "param_grad_")))
_UPDATE = tuple(f for f in ("update_ratio", "weight_norm") if f in FIELDS)  # the change, then its result
_FORWARD = tuple(f for f in FIELDS if f not in _BACKWARD + _UPDATE)


def _values_differ(a, b, rtol: float, atol: float) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    diff = abs(a - b)
    return not math.isnan(diff) and diff > rtol * max(abs(a), abs(b)) + atol


def _plain(value):
    return value if value is None or math.isfinite(value) else None


def _finding_differences(
    a: list[Finding], b: list[Finding], layers_a: set[str], layers_b: set[str]
) -> tuple[list[dict], list[dict], list[dict]]:
    """The findings of one run the other lacks, told against the other's state (`layers_*`: each run's layers),
    and those both have that began at another step or severity."""
    by_a, by_b = {f.key: f for f in a}, {f.key: f for f in b}
    only_a = [_described(f, "A", "B", by_b, layers_b) for key, f in by_a.items() if key not in by_b]
    only_b = [_described(f, "B", "A", by_a, layers_a) for key, f in by_b.items() if key not in by_a]
    changed = []
    for key in by_a.keys() & by_b.keys():
        fa, fb = by_a[key], by_b[key]
        if (fa.step, fa.severity) != (fb.step, fb.severity):
            changed.append(
                {
                    "kind": fa.kind,
                    "layer": fa.layer,
                    "a": fa.to_dict(),
                    "b": fb.to_dict(),
                    "text": f"{_where(fa)}{fa.kind}: {fa.severity} from step {fa.step} in A, "
                    f"{fb.severity} from step {fb.step} in B",
                }
            )
    return only_a, only_b, sorted(changed, key=lambda d: d["text"])


def _described(finding: Finding, here: str, there: str, others: dict, other_layers: set[str]) -> dict:
    """`others`: the other run's findings by key. A layer the other run lacks is not called healthy there."""
    other_kinds = sorted(kind for kind, layer in others if layer == finding.layer)
    state = "healthy" if not other_kinds else "with " + ", ".join(other_kinds)
    if finding.layer is None:
        state = "not raised"
    elif finding.layer not in other_layers:
        state = "no such layer"
    text = f"{_where(finding)}{finding.kind} ({finding.severity}) from step {finding.step} in {here}, "
    text += f"{state} in {there}"
    return {**finding.to_dict(), "text": text}


def _where(finding: Finding) -> str:
    return f"{finding.layer}: " if finding.layer else ""


def format_comparison(result: dict) -> str:
    """What `bpviz compare` prints: the verdict, the divergence, the findings one run lacks."""
    lines = [f"A: {result['a']} ({result['steps']['a']} steps)", f"B: {result['b']} ({result['steps']['b']} steps)"]
    div = result["divergence"]
    if div is None:
        lines.append(f"no divergence over the common steps (relative tolerance {result['rtol']:g})")
    else:
        where = f"layer {div['layer']}, " if div["layer"] else ""
        lines.append(
            f"diverge at step {div['step']}: {where}{div['statistic']} {_number(div['a'])} in A, "
            f"{_number(div['b'])} in B (relative tolerance {result['rtol']:g})"
        )
    if result["steps"]["a"] != result["steps"]["b"]:
        lines.append("the runs have different lengths")
    if result["layers_only_in_a"] or result["layers_only_in_b"]:
        lines.append(f"the runs have different layers (compared by name): {layer_difference(result)}")
    texts = [f["text"] for f in result["findings_only_in_a"] + result["findings_only_in_b"]]
    texts += [f["text"] for f in result["findings_that_differ"]]
    if texts:
        lines.append("findings that differ:")
        lines += [f"  {text}" for text in texts]
    else:
        lines.append("the same findings in both")
    lines.append("the runs are the same" if result["same"] else "the runs differ")
    return "\n".join(lines) + "\n"


def layer_difference(result: dict) -> str:
    """ "16 layers only in B (conv1, bn1, conv2, …)": what a comparison of two different models cannot compare."""
    parts = []
    for side in ("a", "b"):
        names = result[f"layers_only_in_{side}"]
        if names:
            shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
            parts.append(f"{len(names)} layer{'s' * (len(names) != 1)} only in {side.upper()} ({shown})")
    return "; ".join(parts)


def _number(value) -> str:
    return "-" if value is None else f"{value:.6g}"
