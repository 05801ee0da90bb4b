"""Writing TOML by hand: values escaped so that ``tomllib`` reads back exactly what was given.

Only what generated configs need: strings, booleans, integers, floats,
arrays, inline tables, table headers and comments.  No new dependency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def key(name: str) -> str:
    """A key: bare when TOML allows it, else quoted."""
    return name if _BARE_KEY.fullmatch(name) else string(name)


def dotted(*names: str) -> str:
    """A dotted key path such as ``flows."my flow".source``."""
    return ".".join(key(n) for n in names)


def value(item: Any) -> str:
    """Any supported value on one line (nested tables become inline tables)."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        if not math.isfinite(item):
            raise ValueError(f"TOML cannot hold {item!r} here")
        return repr(item)
    if isinstance(item, str):
        return string(item)
    if isinstance(item, Mapping):
        if not item:
            return "{}"
        return "{ " + ", ".join(f"{key(str(k))} = {value(v)}" for k, v in item.items()) + " }"
    if isinstance(item, Sequence):
        return "[" + ", ".join(value(v) for v in item) + "]"
    raise TypeError(f"cannot write {type(item).__name__} as TOML")


def comment(text: str, indent: str = "") -> list[str]:
    """`text` as comment lines (one per line of text)."""
    return [f"{indent}# {line}".rstrip() for line in text.splitlines() or [""]]


def assignments(table: Mapping[str, Any]) -> list[str]:
    """``key = value`` lines for every entry of `table`."""
    return [f"{key(k)} = {value(v)}" for k, v in table.items()]
