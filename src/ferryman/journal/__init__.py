"""Journal backends, chosen by the ``[ferryman] journal`` setting.

``"sqlite"`` keeps the journal in ``<root>/journal.db``; ``"sqlite:///path"``
puts the file elsewhere (four slashes for an absolute path, like SQLAlchemy:
``sqlite:////var/lib/ferryman/journal.db``; a relative path is relative to
`root`); ``"postgresql://…"`` shares one PostgreSQL database between instances.
"""

from __future__ import annotations

from pathlib import Path

from ferryman.errors import ConfigError
from ferryman.journal.base import Journal

__all__ = ["Journal", "open_journal"]


def open_journal(spec: str, root: Path) -> Journal:
    """Open (creating and migrating as needed) the journal that `spec` names.

    Raises `ConfigError` for a spec it does not understand and `JournalError`
    when the journal cannot be opened.
    """
    spec = spec.strip()
    if spec == "sqlite":
        from ferryman.journal.sqlite import SqliteJournal

        return SqliteJournal(Path(root) / "journal.db")
    if spec.startswith("sqlite:///"):
        from ferryman.journal.sqlite import SqliteJournal

        path = Path(spec.removeprefix("sqlite:///")).expanduser()
        if not str(path) or str(path) == ".":
            raise ConfigError(f"journal {spec!r} names no file; write sqlite:///journal.db")
        return SqliteJournal(path if path.is_absolute() else Path(root) / path)
    if spec.startswith(("postgresql://", "postgres://")):
        from ferryman.journal.postgres import PostgresJournal

        return PostgresJournal(spec)
    from ferryman.journal.rows import redact

    raise ConfigError(
        f"journal {redact(spec)!r} is not understood: use 'sqlite', 'sqlite:///path/to/journal.db' "
        "or 'postgresql://user@host/database'"
    )
