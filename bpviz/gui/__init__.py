"""The bpviz window: a Qt view on the engine (bpviz.engine), which never imports Qt itself."""

from bpviz.gui import qt_refcount  # noqa: F401  first, before any Qt call: guards against a PySide6 refcount bug
