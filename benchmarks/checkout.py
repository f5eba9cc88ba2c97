"""Put the checkout these benchmarks live in first on the import path, so they measure its bpviz, installed or not.

Run from the repository root as `python3 benchmarks/NAME.py`: Python puts
benchmarks/ on the path (for the shared workloads in overhead.py), not the
root, and an installed bpviz may be another copy than the one being measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
