"""The reference the csv step is held to: Python's csv reader → writer loop, value by value."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from ferryman.steps.csv.dialect import Options
from ferryman.steps.csv.rewrite import LineSource, Rewriter


class Unterminated(Exception):
    """The reference loop reached the end of the file inside a quoted field (the csv module accepts that)."""


def reference(text: str, options: Options) -> str:
    """What the plain csv-module loop writes for `text` (raises csv.Error / Unterminated on bad input)."""
    out = io.StringIO()
    writer = csv.writer(out, **options.output.kwargs())
    done = False

    def lines() -> Iterator[str]:
        nonlocal done
        yield from io.StringIO(text, newline="")
        done = True

    for row in csv.reader(lines(), **options.input.kwargs()):
        if done:
            raise Unterminated()
        if not row and options.skip_blank_lines:
            continue
        values = []
        for value in row:
            if isinstance(value, str):
                for rule in options.rules:
                    value = rule.pattern.sub(rule.repl, value)
            values.append(value)
        writer.writerow(values)
    return out.getvalue()


def rewrite(text: str, options: Options, read_size: int = 1 << 20, encoding: str = "utf-8",
            binary: bool = False) -> str:
    """What the csv step's engine writes for `text` (working on bytes where it can with `binary`)."""
    out: list[str] = []

    def write(piece: str | bytes) -> None:
        out.append(piece.decode(encoding) if isinstance(piece, bytes) else piece)

    rewriter = Rewriter(options, write, encoding if binary else None)
    source = LineSource(io.BytesIO(text.encode(encoding)), encoding, "strict", read_size, binary=rewriter.binary)
    rewriter.run(source)
    return "".join(out)
