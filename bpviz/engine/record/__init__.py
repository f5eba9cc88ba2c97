"""One host transfer per step, then plain data: step records, the history, dead-unit tracking."""
