"""Logging: stderr always; with ``[ferryman.log] files``, one file per lowest level, rotated at midnight.

Every record is redacted as it is written (`ferryman.redact`): a pre-signed
link in a message, an error or a traceback shows as ``https://host/path?…``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ferryman.redact import redact

if TYPE_CHECKING:
    from ferryman.config import LogConfig

FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """The usual line, with every URL in it redacted (the message, its arguments, a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup(config: LogConfig | None, root: Path | None, *, verbose: int = 0, quiet: bool = False) -> None:
    """Configure the ``ferryman`` logger (idempotent: handlers from an earlier call are replaced)."""
    logger = logging.getLogger("ferryman")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    level = (config.level if config else "info").upper()
    if verbose:
        level = "DEBUG"
    if quiet:
        level = "WARNING"
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(level)
    stderr.setFormatter(RedactingFormatter(FORMAT))
    logger.addHandler(stderr)
    if config is None or root is None or not config.files:
        return
    folder = Path(config.dir).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    folder.mkdir(parents=True, exist_ok=True)
    for file_level, name in config.files.items():
        path = folder / name
        handler: logging.Handler
        if config.rotate == "midnight":
            handler = logging.handlers.TimedRotatingFileHandler(
                path, when="midnight", backupCount=config.keep, encoding="utf-8")
        else:
            handler = logging.FileHandler(path, encoding="utf-8")
        handler.setLevel(file_level.upper())
        handler.setFormatter(RedactingFormatter(FORMAT))
        logger.addHandler(handler)
