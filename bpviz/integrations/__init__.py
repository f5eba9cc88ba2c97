"""Thin adapters from training frameworks' callbacks to `bpviz.watch`; each imports its framework only when used."""
