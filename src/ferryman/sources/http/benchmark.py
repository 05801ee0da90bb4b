"""PIExporter's high-water file (``benchMark.json``) as the ``http`` source's marks.

Both of its formats: ``{form: maxId}`` and the later ``{form: {"current": maxId, "deleteable": …}}``.
A form's mark moves up to the file's id, never down (records above a journaled mark were
captured already).  The file's ``deleteable`` is reported, not applied: the list endpoint (or
the source's ``deleteable``) decides that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ferryman.errors import ConfigError
from ferryman.journal.base import Journal
from ferryman.sources.http.parse import order
from ferryman.sources.http.state import load, save


def read_benchmark(path: Path) -> dict[str, tuple[int, bool | None]]:
    """Form → (high-water id, deleteable or None) from either format; a clear error otherwise."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a benchmark file is a JSON object of forms")
    marks: dict[str, tuple[int, bool | None]] = {}
    for form, value in data.items():
        deleteable = None
        if isinstance(value, dict):
            deleteable = value.get("deleteable") if isinstance(value.get("deleteable"), bool) else None
            value = value.get("current")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{path}: form {form!r} has no integer id (got {json.dumps(value)[:40]})")
        marks[form] = (value, deleteable)
    return marks


def import_benchmark(journal: Journal, flow: str, path: Path) -> list[str]:
    """Raise the marks of `flow`'s collections to the file's ids; one line per form, saying what changed."""
    lines = []
    for form, (mark, deleteable) in sorted(read_benchmark(path).items()):
        state = load(journal, flow, form)
        flag = "" if deleteable is None else f" (the file says deleteable = {str(deleteable).lower()})"
        if state.mark is not None and order(state.mark) >= order(mark):
            lines.append(f"{form}: kept the journal's mark {state.mark} (the file has {mark}){flag}")
            continue
        before = state.mark
        state.mark = mark
        state.etag = state.modified = state.validated = None
        save(journal, flow, form, state)
        lines.append(f"{form}: mark {before if before is not None else 'none'} → {mark}{flag}")
    return lines
