"""How numbers read in the window: one formatter per kind, so a table, a panel and a tooltip agree.

Missing values read "–" everywhere (a blank cell looks like a bug, a 0 like a
measurement); non-finite ones read as themselves ("nan", "inf"), since they
are the symptom a user is looking for.
"""

from __future__ import annotations

from bpviz.engine.report.percent import percent_text

MISSING = "–"


def number(value: float | None, spec: str = ".4g") -> str:
    """`value` formatted with `spec`, "–" when missing, "nan"/"inf" when not finite."""
    if value is None:
        return MISSING
    return format(value, spec)


def percent(share: float | None) -> str:
    """A share in 0..1 as a percentage with one decimal (never rounded onto 0% or 100%), "–" when missing."""
    return MISSING if share is None else percent_text(share)
