"""``log_scan``: a digest of the log entries that matched since the last run (CIOC's process_logged_errors)."""

from ferryman.steps.logscan.config import LogScanConfig
from ferryman.steps.logscan.step import LogScanStep

__all__ = ["LogScanConfig", "LogScanStep"]
