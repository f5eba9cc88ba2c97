"""Driving one run step by step, for the CLI and the window: the stepper, pauses, breakpoints, remedies."""
