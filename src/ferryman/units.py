"""Durations and sizes written as strings in the config: ``"500ms"``, ``"5m"``, ``"10MB"``, ``"2GiB"``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4, "ti": 1024**4,
}


def parse_duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"10s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"2w"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '30s', '5m', '1h' or '7d'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration; write it like '500ms', '30s', '5m', '1h' or '7d'")


def parse_size(value: object) -> int:
    """Bytes from ``"10MB"`` (powers of 1000), ``"2GiB"`` (powers of 1024) or a number of bytes."""
    if isinstance(value, bool):
        raise ValueError("a size is a string like '10MB' or '2GiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match and match.group(2).lower() in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError(f"{value!r} is not a size; write it like '512KB', '10MB' or '2GiB'")


def format_duration(seconds: float) -> str:
    """The shortest config spelling of a duration, for generated configs and messages."""
    for unit in ("w", "d", "h", "m", "s"):
        factor = _DURATION_UNITS[unit]
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    return f"{round(seconds * 1000)}ms"


def format_size(size: float) -> str:
    """A human size (``"1.5 MiB"``) for messages and tables."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
"""A duration in seconds, written in the config as ``"30s"``."""

Size = Annotated[int, BeforeValidator(parse_size)]
"""A size in bytes, written in the config as ``"10MB"``."""
