"""bpviz: a visual backpropagation debugger for PyTorch."""

from bpviz.engine.config import Config
from bpviz.engine.runs.reader import Run, open_run
from bpviz.engine.watcher import Watcher, watch
from bpviz.version import __version__

__all__ = ["Config", "Run", "Watcher", "open_run", "watch", "__version__"]
