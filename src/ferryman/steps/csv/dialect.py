"""The terms every part of the ``csv`` step shares: a dialect, a replace rule, the resolved
options of one rewrite, its statistics and its error.  At the bottom of the package."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from typing import Any


class CsvFormatError(Exception):
    """Malformed or unsupported input, with the physical line number where it was found."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


@dataclass(frozen=True)
class Dialect:
    """A csv dialect in the csv module's own terms."""

    delimiter: str = ","
    quotechar: str | None = '"'
    quoting: int = csv.QUOTE_MINIMAL
    escapechar: str | None = None
    doublequote: bool = True
    skipinitialspace: bool = False
    lineterminator: str = "\r\n"
    strict: bool = False

    def kwargs(self) -> dict[str, Any]:
        return {
            "delimiter": self.delimiter, "quotechar": self.quotechar, "quoting": self.quoting,
            "escapechar": self.escapechar, "doublequote": self.doublequote,
            "skipinitialspace": self.skipinitialspace, "lineterminator": self.lineterminator,
            "strict": self.strict,
        }


@dataclass(frozen=True)
class Rule:
    """``replace`` entry: `pattern` substituted by `repl` (``re.sub`` syntax) in every value."""

    pattern: re.Pattern[str]
    repl: str


@dataclass
class Options:
    """What the rewrite does, resolved from the step's config."""

    input: Dialect = field(default_factory=Dialect)
    output: Dialect = field(default_factory=Dialect)
    rules: list[Rule] = field(default_factory=list)
    columns: list[str] | None = None
    rename: dict[str, str] = field(default_factory=dict)
    skip_blank_lines: bool = False
    check_columns: bool = False
    """Every row must have as many fields as the header (``strict = true``)."""
    fast: bool = True
    """Use the fast path where it applies (False: always the plain csv loop; for tests and benchmarks)."""
    max_field: int = 64 << 20
    """Longest value, in characters, before the item fails (``max_field``)."""


@dataclass
class Stats:
    rows: int = 0
    fast_chars: int = 0
    slow_chars: int = 0
