"""What components of one flow share at run time."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferryman.connections import ConnectionConfig
    from ferryman.journal.base import Journal
    from ferryman.transports import TransportPool


@dataclass
class FlowContext:
    """Handed to every source, step and notifier of a flow when it is built.

    `root` is ferryman's state folder (journal, work folders, logs);
    `config_dir` is the folder of the config file, which relative paths in
    the config are relative to.
    """

    flow: str
    root: Path
    config_dir: Path
    connections: Mapping[str, ConnectionConfig]
    transports: TransportPool
    journal: Journal
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("ferryman"))
    config_file: Path | None = None
    """The config file itself (the ``python`` step hands it to rattail-style ``Class(config)`` actions)."""

    def resolve(self, path: str | Path) -> Path:
        """A config path made absolute against the config file's folder (``~`` expanded)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.config_dir / p)

    def connection(self, name: str, kind: str) -> ConnectionConfig:
        """The connection called `name`, which must be of type `kind`."""
        from ferryman.errors import PermanentError

        conn = self.connections.get(name)
        if conn is None:
            raise PermanentError(f"no connection named {name!r} (declare it under [connections.{name}])")
        if conn.type != kind:
            raise PermanentError(f"connection {name!r} is of type {conn.type!r}, not {kind!r}")
        return conn
