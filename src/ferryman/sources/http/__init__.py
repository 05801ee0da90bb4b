"""The ``http`` source: `config` at the bottom; `client` (requests), `parse` (streamed records),
`state` (the mark and the window, in the journal) use it; `source` joins them."""

from ferryman.sources.http.config import HttpSourceConfig
from ferryman.sources.http.source import HttpSource

__all__ = ["HttpSource", "HttpSourceConfig"]
