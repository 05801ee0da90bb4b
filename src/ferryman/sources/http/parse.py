"""Records out of a response body on disk, streamed (ijson's C parser): memory stays bounded by
one record, whatever the size of the response.

A body that is not JSON, is truncated, holds no list where ``records.list`` points, or holds a
record that is not an object or has no usable id raises `BadResponse` with a one-line reason
(never a field's value: records are sensitive).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ijson

from ferryman.errors import PermanentError

RecordId = int | str
"""A record's id: an integer, or a string that sorts like the records (zero-padded, ISO time)."""


class BadResponse(PermanentError):
    """The body cannot be read as the configured records: the poll fails, nothing is acknowledged."""


def order(value: RecordId) -> tuple[int, int | str]:
    """A sort key over ids: integers numerically, strings after them, lexicographically."""
    return (0, value) if isinstance(value, int) else (1, value)


def id_text(value: RecordId) -> str:
    return str(value)


def _prefix(list_path: str) -> str:
    return "item" if list_path == "$" else list_path.removeprefix("$.") + ".item"


def record_id(record: Any, id_field: str, position: int) -> RecordId:
    """The id of the `position`-th record, or `BadResponse`."""
    if not isinstance(record, dict):
        raise BadResponse(f"record {position} is a JSON {type(record).__name__}, not an object")
    if id_field not in record:
        raise BadResponse(f"record {position} has no {id_field!r} field (its id)")
    value = record[id_field]
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        kind = "null" if value is None else type(value).__name__
        raise BadResponse(f"record {position} has an id of type {kind}; an id is an integer or a non-empty string")
    return value


@dataclass(frozen=True)
class Parsed:
    """One record of a response, with its id and its position (1-based)."""

    id: RecordId
    record: dict[str, Any]
    position: int


def records(path: Path, list_path: str, id_field: str) -> Iterator[Parsed]:
    """Every record of the response body in `path`, in order; raises `BadResponse` (possibly after
    some records were yielded: callers act only once the whole body was read)."""
    prefix = _prefix(list_path)
    count = 0
    with open(path, "rb") as body:
        try:
            for record in ijson.items(body, prefix, use_float=True):
                count += 1
                yield Parsed(record_id(record, id_field, count), record, count)
        except ijson.JSONError as exc:
            raise _bad(exc, count) from None
    if count == 0:
        _check_list(path, list_path)


def _reason(exc: Exception) -> str:
    """The parser's reason without the piece of the body it quotes (records are sensitive)."""
    text = " ".join(str(exc).split())
    return text.split(". ", 1)[0].rstrip(".")[:100] or type(exc).__name__


def _bad(exc: Exception, count: int) -> BadResponse:
    if "premature EOF" in str(exc):
        return BadResponse(f"the response is not complete JSON (truncated after {count} record(s))")
    return BadResponse(f"the response is not JSON ({_reason(exc)}, after {count} record(s))")


def _check_list(path: Path, list_path: str) -> None:
    """An answer without records must still hold the list (an object where a list was expected is
    an error, not "nothing new")."""
    want = "" if list_path == "$" else list_path.removeprefix("$.")
    with open(path, "rb") as body:
        try:
            for prefix, event, _ in ijson.parse(body):
                if prefix == want and event == "start_array":
                    return
                if prefix == want and event in ("start_map", "string", "number", "boolean", "null"):
                    where = "at the top level" if list_path == "$" else f"at {list_path!r}"
                    raise BadResponse(f"the response holds a JSON {_kind(event)} {where}, not a list of records")
        except ijson.JSONError as exc:
            raise _bad(exc, 0) from None
    raise BadResponse(f"the response has no list at records.list = {list_path!r}")


def _kind(event: str) -> str:
    return {"start_map": "object", "string": "string", "number": "number", "boolean": "boolean",
            "null": "null"}.get(event, event)


@dataclass(frozen=True)
class Collection:
    """A collection as the list endpoint (or the config) names it."""

    name: str
    deleteable: bool
    size: int | None = None


def collections(body: bytes, name: str, deleteable: str | None, size: str | None,
                default_deleteable: bool | list[str]) -> list[Collection]:
    """The collections of a list endpoint's answer (``[{name, size, deleteable}, …]``)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadResponse(f"the list of collections is not JSON: {_reason(exc)}") from None
    if not isinstance(data, list):
        raise BadResponse(f"the list of collections is a JSON {type(data).__name__}, not a list")
    found: list[Collection] = []
    for position, entry in enumerate(data, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get(name), str) or not entry[name]:
            raise BadResponse(f"entry {position} of the list of collections has no {name!r} string")
        title = entry[name]
        if "/" in title or title in (".", ".."):
            raise BadResponse(f"entry {position} of the list of collections has an unsafe name {title[:40]!r}")
        flag = entry.get(deleteable) if deleteable else None
        if isinstance(flag, bool):
            allowed = flag
        elif isinstance(default_deleteable, bool):
            allowed = default_deleteable
        else:
            allowed = title in default_deleteable
        count = entry.get(size) if size else None
        found.append(Collection(title, allowed, count if isinstance(count, int) and not isinstance(count, bool)
                                else None))
    return found
