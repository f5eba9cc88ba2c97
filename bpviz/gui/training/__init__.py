"""The training side of the window: the worker thread and the controller that drives it."""
