"""The ``schedule`` source: `config` at the bottom; `timing` (when ticks fall) and `each`
(``for_each`` values) use it; `source` joins them."""

from ferryman.sources.schedule.config import ScheduleSourceConfig
from ferryman.sources.schedule.source import ScheduleSource

__all__ = ["ScheduleSource", "ScheduleSourceConfig"]
