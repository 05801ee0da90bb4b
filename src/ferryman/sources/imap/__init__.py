"""The ``imap`` source: `config` at the bottom; `client`, `mime`, `take`, `search`, `idle` and
`dispose` use it; `source` joins them."""

from ferryman.sources.imap.config import ImapSourceConfig
from ferryman.sources.imap.source import ImapSource

__all__ = ["ImapSource", "ImapSourceConfig"]
