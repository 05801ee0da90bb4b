"""Ferryman carries scheduled data exports from where they arrive to where they are needed."""

__version__ = "0.1.0"
