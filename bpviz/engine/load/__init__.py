"""Loading user code: experiment files, checkpoints, pickled models, the samples."""
