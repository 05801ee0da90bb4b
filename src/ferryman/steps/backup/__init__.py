"""Backup maintenance steps: ``pg_dump`` (a producer), ``prune`` (GFS retention) and ``compress_old``.

``config.py`` and ``gfs.py`` (the pure retention rules) are the bottom; each step module joins them.
"""

from ferryman.steps.backup.compress import CompressOldStep
from ferryman.steps.backup.config import CompressOldConfig, PgDumpConfig, PruneConfig
from ferryman.steps.backup.pg_dump import PgDumpStep
from ferryman.steps.backup.prune import PruneStep

__all__ = ["CompressOldConfig", "CompressOldStep", "PgDumpConfig", "PgDumpStep", "PruneConfig", "PruneStep"]
