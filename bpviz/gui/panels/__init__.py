"""Widgets that list or edit: the layer table, findings, breakpoints, hyperparameters, step and workbench panels."""
