"""The ``schedule`` source: `config` at the bottom; `timing` (when ticks fall) and `each`
(``for_each`` values) use it; `source` joins them.

The names below are imported from their modules when first used (`ferryman.registry.exports`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryman.registry import exports

if TYPE_CHECKING:
    from ferryman.sources.schedule.config import ScheduleSourceConfig
    from ferryman.sources.schedule.source import ScheduleSource

__all__ = ["ScheduleSource", "ScheduleSourceConfig"]
__getattr__ = exports(__name__, {"ScheduleSource": "source", "ScheduleSourceConfig": "config"})
