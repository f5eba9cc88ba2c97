"""The training side of the window: the experiment process's client and the controller that drives it."""
