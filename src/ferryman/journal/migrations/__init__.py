"""The journal's schema as numbered scripts: ``NNNN_name.sql``, applied in order.

Scripts are shared by every backend; ``${serial}`` and ``${real}`` stand for
the dialect's column types.  A released script is never edited: a schema
change is the next number.  `SqlJournal._apply_migrations` applies the
missing ones and records each in ``schema_version``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from string import Template

from ferryman.errors import JournalError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    script: str

    def statements(self, types: Mapping[str, str]) -> list[str]:
        """The script's statements with the dialect's `types` filled in (comments dropped)."""
        text = Template(self.script).substitute(types)
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrations() -> list[Migration]:
    """The migrations shipped with ferryman, oldest first."""
    found = []
    for entry in resources.files(__name__).iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise JournalError("journal migrations are not numbered 0001, 0002, … without gaps")
    return found
