"""Sources by ``type``.  Adding one: a module here and a line in `SOURCES`."""

from __future__ import annotations

from typing import Any

from ferryman.sources.base import Source, SourceConfig
from ferryman.sources.imap import ImapSource

SOURCES: dict[str, type[Source[Any]]] = {
    "imap": ImapSource,
}
"""Every source type, by its config ``type`` key."""

__all__ = ["SOURCES", "Source", "SourceConfig"]
