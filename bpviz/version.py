"""The version of bpviz, in a module of its own so the engine can name it without importing the package."""
__version__ = "0.1.0"
