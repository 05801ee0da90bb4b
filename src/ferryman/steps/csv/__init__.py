"""The ``csv`` step: `dialect` at the bottom, `config` on it; the `rewrite` engine and its `fast`
path use `dialect`; `step` joins them.

The names below are imported from their modules when first used (`ferryman.registry.exports`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryman.registry import exports

if TYPE_CHECKING:
    from ferryman.steps.csv.config import CsvConfig
    from ferryman.steps.csv.step import CsvStep

__all__ = ["CsvConfig", "CsvStep"]
__getattr__ = exports(__name__, {"CsvConfig": "config", "CsvStep": "step"})
