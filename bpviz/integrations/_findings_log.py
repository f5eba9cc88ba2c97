"""How an adapter words a finding in a framework's log, and the counts it logs each step."""

from __future__ import annotations

from bpviz.engine.diagnosis.finding import Finding
from bpviz.engine.watcher import Watcher


def finding_line(finding: Finding) -> str:
    """One log line: severity, kind, where (layer, rank), since when, and the message."""
    where = f" at {finding.layer}" if finding.layer else ""
    rank = f" (rank {finding.rank})" if finding.rank is not None else ""
    state = "" if finding.active else " (no longer holds)"
    return f"bpviz {finding.severity}: {finding.kind}{where}{rank}, step {finding.step}{state}: {finding.message}"


def finding_counts(watcher: Watcher) -> dict[str, float]:
    """Active findings by severity, as metrics a logger can plot next to the loss."""
    active = [f for f in watcher.diagnosis.findings if f.active]
    return {f"bpviz/{kind}s": float(sum(f.severity == kind for f in active)) for kind in ("error", "warning")}
