"""``log``: failures as log records (at ERROR), so log files and journald carry them."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from ferryman.notify.base import Failure, Notifier, NotifierConfig


class LogNotifierConfig(NotifierConfig):
    """Write failures to ferryman's log."""

    type: Literal["log"]
    level: Literal["warning", "error", "critical"] = Field("error", description="Log level of the record.")


class LogNotifier(Notifier[LogNotifierConfig]):
    Config = LogNotifierConfig

    def failed(self, failures: list[Failure]) -> None:
        log = logging.getLogger("ferryman.notify")
        level = logging.getLevelName(self.config.level.upper())
        if len(failures) > 1:
            log.log(level, "%d items of flow %s failed", len(failures), failures[0].flow)
        for f in failures:
            log.log(level, "item %s of flow %s failed at step %s after %d attempt(s): %s [%s]",
                    f.item_id, f.flow, f.step, f.attempts, f.error, f.origin)

    def recovered(self, flow: str) -> None:
        logging.getLogger("ferryman.notify").info("flow %s succeeds again", flow)
