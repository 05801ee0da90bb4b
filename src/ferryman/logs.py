"""Logging: stderr always; with ``[ferryman.log] files``, one file per lowest level, rotated at midnight.

Every record is redacted as it is written (`ferryman.redact`): a pre-signed
link in a message, an error or a traceback shows as ``https://host/path?…``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ferryman.redact import redact

if TYPE_CHECKING:
    from ferryman.config import LogConfig

FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
FORMATS = ("text", "json")


class RedactingFormatter(logging.Formatter):
    """The usual line, with every URL in it redacted (the message, its arguments, a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (for journald, Loki, jq): time, level, logger, message, and the
    traceback as ``exception``; redacted like the text lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name,
                 "message": redact(record.getMessage())}
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time, so a progress bar that redirects it keeps
    itself on the last line, with the log lines printed above it."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup(config: LogConfig | None, root: Path | None, *, verbose: int = 0, quiet: bool = False,
          form: str = "text") -> None:
    """Configure the ``ferryman`` logger (idempotent: handlers from an earlier call are replaced);
    `form` is ``text`` or ``json`` (one object per line, stderr and files alike)."""
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
    formatter = JsonFormatter() if form == "json" else RedactingFormatter(FORMAT)
    stderr = _Stderr()
    stderr.setLevel(level)
    stderr.setFormatter(formatter)
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
        handler.setFormatter(formatter)
        logger.addHandler(handler)
