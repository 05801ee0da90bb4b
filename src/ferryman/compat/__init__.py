"""Reading the configuration files of the tools ferryman replaces.

`rattail` turns a Rattail File Monitor INI file (``[rattail.filemon]``) into
ferryman's raw config mapping, and into commented TOML (``ferryman convert``).
"""
