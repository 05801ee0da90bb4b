"""`LogScanConfig`: which logs, which lines, how entries are grouped (the bottom of ``log_scan``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from ferryman import templates
from ferryman.steps.base import StepConfig

DEFAULT_PATTERNS = [r"\b(ERROR|CRITICAL|FATAL)\b", r"^Traceback \(most recent call last\):"]
DEFAULT_CONTINUATION = (r"[ \t]|Traceback \(most recent call last\)|During handling of the above exception"
                        r"|The above exception was the direct cause|[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)"
                        r"(:|$)")
"""A line continuing the entry above it: indented, or part of a Python traceback."""


def compile_bytes(pattern: str, what: str) -> re.Pattern[bytes]:
    """`pattern` compiled for bytes, multi-line (``^`` and ``$`` at every line); a bad one raises `ValueError`."""
    try:
        return re.compile(pattern.encode("utf-8"), re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"{what}: {pattern!r} is not a valid regex: {exc}") from None


class LogScanConfig(StepConfig):
    """Read what was appended to log files since the last run; make a digest of the entries that match."""

    type: Literal["log_scan"]
    paths: list[str] = Field(min_length=1, description="Globs of the log files, e.g. ['/srv/cioc/logs/*/*.log'] "
                             "(relative to the config file). Rotated files ('app.log.1', 'app.log.2.gz') are "
                             "followed even when the globs do not name them.")
    patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_PATTERNS), min_length=1,
                                description="Regexes; an entry with a line matching any of them goes into the "
                                "digest (default: ERROR, CRITICAL, FATAL and Python tracebacks).")
    ignore: list[str] = Field(default_factory=list, description="Regexes; a matching entry is left out of the "
                              "digest even when it matches patterns.")
    continuation: str = Field(DEFAULT_CONTINUATION, description="Regex matched at the start of a line: such a "
                              "line belongs to the entry above it (a traceback's lines).")
    max_entry_lines: int = Field(200, ge=1, description="Longest entry, in lines; the rest starts a new entry.")
    max_entries: int = Field(500, ge=1, description="Entries written into one digest; more are counted, "
                             "not shown.")
    first_run: Literal["end", "beginning"] = Field(
        "end", description="On the flow's very first run, files already there are read from their end (only "
        "what is appended from then on counts) or from their beginning. Files that appear later are always "
        "read from their beginning.")
    encoding: str = Field("utf-8", description="Encoding of the logs; undecodable bytes show as U+FFFD.")
    name: templates.Template = Field("log-digest-{now:%Y%m%d-%H%M%S}.txt",
                                     description="Name of the digest file the item then carries.")

    @field_validator("patterns", "ignore")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            compile_bytes(pattern, "patterns")
        return value

    @field_validator("continuation")
    @classmethod
    def _continuation(cls, value: str) -> str:
        compile_bytes(value, "continuation")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value
