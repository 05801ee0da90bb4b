"""``csv``: streaming re-dialect of CSV files — delimiter, quoting, line ends, encoding, values.

For every selected file (``*.csv`` by default) the step writes a new file in
the work folder that is byte for byte what Python's csv module writes for
the output dialect when fed the rows its reader reads with the input
dialect (``open(newline="")``), after ``replace`` ran on every value,
``columns`` selected/renamed/reordered the columns and ``skip_blank_lines``
dropped empty lines.  Memory stays constant (blocks of 256 KiB) whatever the
file size; `ferryman.steps.csv.rewrite` explains how it is also several
times faster than that loop.

Malformed input fails the item with the line number: an unterminated quote
(even where the csv module would quietly take the rest of the file as one
value), a value longer than ``max_field`` (named by line, row and column), bytes that are not valid in
the input encoding (unless ``input.errors`` says otherwise), a row with
another number of fields than the header when ``strict = true``.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from ferryman import templates
from ferryman.errors import PermanentError
from ferryman.item import Item
from ferryman.steps.base import Step, StepContext, StepResult
from ferryman.steps.csv.config import CsvConfig
from ferryman.steps.csv.dialect import CsvFormatError
from ferryman.steps.csv.rewrite import CHUNK, MAX_LINE, LineSource, Rewriter, binary_safe
from ferryman.transports.local import os_errors


def first_line_ending(path: Path, encoding: str, default: str = "\r\n") -> str:
    """The first line ending in the file's first 64 KiB (``\\r\\n``, ``\\n`` or ``\\r``)."""
    with open(path, "rb") as f:
        head = codecs.getincrementaldecoder(encoding)("replace").decode(f.read(1 << 16))
    match = re.search(r"\r\n|\r(?!$)|\n", head)
    return match.group() if match else default


class CsvStep(Step[CsvConfig]):
    """Rewrites each selected file into the work folder; other files pass through."""

    Config = CsvConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        selected = set(ctx.files(self.config.include))
        files: list[Path] = []
        rows = 0
        for path in item.files:
            if path not in selected:
                files.append(path)
                continue
            target = ctx.work_dir / templates.render_name(self.config.name, ctx.values(path))
            if target in files:
                raise PermanentError(f"csv: two files would both be named {target.name!r}")
            rows += self.rewrite(path, target)
            files.append(target)
        return StepResult(files=files, outputs={"rows": rows})

    def rewrite(self, source: Path, target: Path) -> int:
        """Rewrite one file; the number of rows written."""
        config = self.config
        with os_errors(f"csv: cannot rewrite {source.name}:"), open(source, "rb") as raw, open(target, "wb") as out:
            detected = "\r\n"
            if config.output.lineterminator is None:
                detected = first_line_ending(source, config.input.encoding or "utf-8")
            options = config.options(detected)
            encoding = config.input.encoding or "utf-8"
            has_bom = raw.read(3) == codecs.BOM_UTF8 and codecs.lookup(encoding).name == "utf-8"
            raw.seek(3 if has_bom and config.input.bom is not False else 0)
            out_encoding = config.output.encoding or config.input.encoding or "utf-8"
            errors = config.input.errors or "strict"
            same = codecs.lookup(encoding).name == codecs.lookup(out_encoding).name
            binary = same and errors == "strict" and (config.output.errors or "strict") == "strict"
            encoder = codecs.getincrementalencoder(out_encoding)(config.output.errors or "strict")
            write_bom = config.output.bom
            if write_bom is None:
                write_bom = has_bom and config.input.bom is not False
            if write_bom and codecs.lookup(out_encoding).name == "utf-8":
                out.write(codecs.BOM_UTF8)

            def write(text: str | bytes) -> None:
                if isinstance(text, bytes):
                    out.write(text)
                    return
                try:
                    out.write(encoder.encode(text))
                except UnicodeEncodeError as exc:
                    char = exc.object[exc.start : exc.end]
                    raise CsvFormatError(
                        lines.line, f"{char!r} cannot be written in {out_encoding} (set output.errors = 'replace')"
                    ) from None

            rewriter = Rewriter(options, write, encoding if binary and binary_safe(encoding) else None)
            lines = LineSource(raw, encoding, errors, CHUNK, binary=rewriter.binary,
                               max_line=options.max_field + MAX_LINE)
            try:
                stats = rewriter.run(lines)
                out.write(encoder.encode("", final=True))
            except CsvFormatError as exc:
                raise PermanentError(f"csv: {source.name}: {exc}") from None
            return stats.rows
