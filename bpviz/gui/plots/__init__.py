"""Everything drawn with pyqtgraph over steps or layers."""
