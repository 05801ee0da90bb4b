"""The ``imap`` source: `config` at the bottom; `client`, `mime`, `take`, `search`, `idle` and
`dispose` use it; `source` joins them.

The names below are imported from their modules when first used (`ferryman.registry.exports`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryman.registry import exports

if TYPE_CHECKING:
    from ferryman.sources.imap.config import ImapSourceConfig
    from ferryman.sources.imap.source import ImapSource

__all__ = ["ImapSource", "ImapSourceConfig"]
__getattr__ = exports(__name__, {"ImapSource": "source", "ImapSourceConfig": "config"})
