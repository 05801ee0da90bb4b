"""How items, flows and step runs are shown by ``status``, ``history`` and ``show``.

Plain aligned text (rich tables on a terminal) or one JSON document with
``--json``.  Nothing shown here can hold a secret: the journal never has a
password, and every URL is redacted on its way out (`ferryman.redact`: a
pre-signed link shows as ``https://host/path?…``) unless ``show --reveal``
asked for it whole.  `short` and `print_json` redact; so does `show_item`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ferryman.item import Item, StepRun
from ferryman.redact import redact, redact_data


def when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def item_dict(item: Item, steps: Sequence[StepRun] | None = None) -> dict[str, Any]:
    """The JSON form of an item (DESIGN.md: id, flow, key, state, attempts, error, times, steps)."""
    data: dict[str, Any] = {
        "id": item.id, "flow": item.flow, "key": item.key, "origin": item.origin,
        "state": str(item.state), "attempts": item.attempts, "error": item.error,
        "error_type": item.error_type, "meta": item.meta, "files": [str(p) for p in item.files],
        "step": item.step, "next_attempt_at": item.next_attempt_at,
        "created_at": item.created_at, "updated_at": item.updated_at,
    }
    data["steps"] = [
        {"index": r.index, "name": r.name, "started_at": r.started_at, "ended_at": r.ended_at,
         "outcome": r.outcome, "error": r.error, "outputs": r.outputs}
        for r in (steps or [])
    ]
    return data


def print_json(data: object, *, reveal: bool = False) -> None:
    """`data` as indented JSON, every string in it redacted unless `reveal`."""
    json.dump(data if reveal else redact_data(data), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table: rich on a terminal, tab-free aligned text otherwise (for grep and scripts)."""
    if sys.stdout.isatty():
        from rich.console import Console  # only a terminal pays for rich
        from rich.table import Table

        t = Table(title=title, show_lines=False)
        for column in columns:
            t.add_column(column)
        for row in rows:
            t.add_row(*row)
        Console().print(t)
        return
    if title:
        print(title)
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) if rows else len(c)
              for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def short(text: str | None, width: int = 70, *, reveal: bool = False) -> str:
    """`text` redacted (unless `reveal`), then cut to `width` characters."""
    if not text:
        return ""
    text = text if reveal else redact(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def show_item(item: Item, steps: Sequence[StepRun], *, reveal: bool = False) -> None:
    """``ferryman show``: every line redacted, unless `reveal` (``--reveal``) asks for the URLs whole."""
    lines = [
        f"item      {item.id}",
        f"flow      {item.flow}",
        f"origin    {item.origin}",
        f"key       {item.key}",
        f"state     {item.state}" + (f" (next attempt {when(item.next_attempt_at)})" if item.next_attempt_at else ""),
        f"attempts  {item.attempts}",
        f"created   {when(item.created_at)}",
        f"updated   {when(item.updated_at)}",
    ]
    if item.error:
        lines.append(f"error     {item.error}")
    if item.meta:
        lines.append("meta")
        lines += [f"  {key} = {value}" for key, value in sorted(item.meta.items())]
    if item.files:
        lines.append("files")
        lines += [f"  {path}" for path in item.files]
    for line in lines:
        print(line if reveal else redact(line))
    rows = []
    for run in steps:
        took = f"{(run.ended_at - run.started_at) * 1000:.0f} ms" if run.ended_at else "-"
        detail = run.error or ", ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in run.outputs.items())
        rows.append((str(run.index), run.name, run.outcome, when(run.started_at), took,
                     short(detail, 90, reveal=reveal)))
    if rows:
        print()
        table(None, ("#", "step", "outcome", "started", "took", "detail"), rows)
