"""Starter configs written by ``ferryman init TEMPLATE``; each renders commented TOML."""

from __future__ import annotations

from collections.abc import Callable

from ferryman.presets.backup import render_backup
from ferryman.presets.cioc import render_cioc
from ferryman.presets.folder import render_folder
from ferryman.presets.itrp import render_itrp
from ferryman.presets.piexporter import render_piexporter

PRESETS: dict[str, Callable[..., str]] = {
    "folder": render_folder,
    "itrp": render_itrp,
    "cioc": render_cioc,
    "backup": render_backup,
    "piexporter": render_piexporter,
}
"""Every template of ``ferryman init``, by name."""
