"""Run files: every step of a training run recorded to one SQLite file, read back, followed live and compared."""
