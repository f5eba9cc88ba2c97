"""Hooks on the device: what each layer does in a step, measured where the tensors live; nothing here syncs."""
