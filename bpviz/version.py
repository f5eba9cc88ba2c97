"""bpviz's version, in a module of its own so the engine can name it without importing the package's front door."""

__version__ = "0.1.0"
