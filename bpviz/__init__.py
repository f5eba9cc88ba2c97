"""bpviz: a visual backpropagation debugger for PyTorch."""
from bpviz.engine.config import Config
from bpviz.engine.watcher import Watcher, watch

__version__ = "0.1.0"
__all__ = ["Config", "Watcher", "watch", "__version__"]
