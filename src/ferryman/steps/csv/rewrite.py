"""The streaming engine behind the ``csv`` step: exactly the csv module's output, several times faster.

The reference is the plain loop ``for row in csv.reader(f): writer.writerow(row)``
(plus ``replace`` on every value, ``columns``, ``skip_blank_lines``).  That loop
is what `Rewriter` runs for any input and any options, row by row (the
*slow path*).  When the options allow it, most of the file goes through the
*fast path* in `ferryman.steps.csv.fast` instead: blocks of a few MiB cut
at record boundaries are rewritten with whole-block string operations, and
a block whose structure the fast path cannot prove it handles exactly (an
odd quote, a quote in the middle of a field, a field over the csv field size
limit, a value that would need quoting, …) is handed back, in smaller pieces,
to the slow path.  Output is byte-identical either way; the tests compare
both against the csv module on random inputs and dialects.

`LineSource` decodes the file in blocks and splits lines exactly as
``open(newline="")`` does (``\\r\\n``, ``\\r`` or ``\\n``), so the slow path's
reader sees the very lines the reference loop would.
"""

from __future__ import annotations

import codecs
import csv
import re
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from ferryman.steps.csv.dialect import CsvFormatError, Options, Stats
from ferryman.units import format_size

CHUNK = 256 << 10
"""Characters per fast-path block (and bytes per read): small enough for the CPU caches."""

MIN_BLOCK = 16 << 10
"""Smallest block the fast path retries before a region goes through the slow path."""

MAX_BLOCK = 4 << 20
"""Largest block the fast path grows to for a record longer than `CHUNK` (longer ones take the slow path)."""

MAX_LINE = 32 << 20
"""A single line longer than ``max_field`` plus this fails the file (it would have to be held in memory whole)."""

_LIMIT_LOCK = threading.Lock()


def allow_fields(max_field: int) -> None:
    """Let the csv module's reader take fields of twice `max_field` characters.

    ``csv.field_size_limit`` is one value for the whole process, read by every
    reader on every field, so a per-flow value cannot live there: two flows
    with different ``max_field`` running on two workers would race.  It is
    only ever *raised* here (under a lock, to the largest need seen), which
    can never make another reader fail; the per-step limit is enforced by the
    `Rewriter` itself, which can then name the row and column.  The headroom
    (2x) is what lets a field just over ``max_field`` reach that check instead
    of the reader's own message; memory stays bounded by it.
    """
    need = 2 * max_field + 1
    if csv.field_size_limit() >= need:
        return
    with _LIMIT_LOCK:
        if csv.field_size_limit() < need:
            csv.field_size_limit(need)

_EOL = re.compile(r"\r\n|\r|\n")
_EOL_BYTES = re.compile(rb"\r\n|\r|\n")


ASCII_SAFE = ("utf-8", "ascii", "latin-1", "iso8859-", "cp125")
"""Codecs in which the ASCII structure characters are single bytes that never occur inside another character."""


def binary_safe(encoding: str) -> bool:
    """Whether text in `encoding` can be split at ASCII quotes, delimiters and line ends without decoding."""
    name = codecs.lookup(encoding).name
    return name.startswith(ASCII_SAFE) and "sig" not in name


class LineSource:
    """The text of a binary stream, handed out as blocks of whole lines or one line at a time.

    With ``binary = True`` (an ASCII-safe encoding) blocks stay bytes in that
    encoding, which saves decoding and encoding them; `check` validates a
    block, and `lines` decodes each line for the csv reader.
    """

    def __init__(self, raw: IO[bytes], encoding: str, errors: str, read_size: int = CHUNK,
                 binary: bool = False, max_line: int = MAX_LINE) -> None:
        self._raw = raw
        self._max_line = max_line
        self._encoding = encoding
        self._errors = errors
        self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        self._read_size = read_size
        self.binary = binary
        self._cr: Any = b"\r" if binary else "\r"
        self._nl: Any = b"\n" if binary else "\n"
        self._eol = _EOL_BYTES if binary else _EOL
        self.buf: Any = b"" if binary else ""
        self.pos = 0
        self.eof = False
        self.line = 0
        """Complete lines consumed so far."""
        self.consumed = 0
        self.exhausted = False

    def _fill(self) -> bool:
        """Read (and decode) one more piece; False at the end of the stream."""
        if self.eof:
            return False
        data = self._raw.read(self._read_size)
        final = not data
        if self.binary:
            text: Any = data
        else:
            try:
                text = self._decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                good = data[: exc.start].decode(self._encoding, "replace") if exc.start else ""
                line = self.line + self._eols(self.buf, self.pos, len(self.buf)) + _count_eols(good, 0, len(good))
                raise self._undecodable(line + 1, exc) from None
        if self.pos:
            self.buf = self.buf[self.pos :] + text
            self.pos = 0
        else:
            self.buf += text
        self.eof = final
        return True

    def _undecodable(self, line: int, exc: UnicodeDecodeError) -> CsvFormatError:
        bad = exc.object[exc.start : exc.end]
        return CsvFormatError(
            line, f"bytes {bad!r} are not valid {self._encoding} (set input.encoding, or input.errors = "
            "'replace' to accept them)"
        )

    def _eols(self, text: Any, start: int, end: int) -> int:
        crlf = text.count(self._cr + self._nl, start, end)
        return int(text.count(self._nl, start, end) + text.count(self._cr, start, end) - crlf)

    def check(self, block: bytes) -> None:
        """Binary mode: raise `CsvFormatError` with the line number if `block` is not valid text."""
        if block.isascii():
            return
        try:
            block.decode(self._encoding, self._errors)
        except UnicodeDecodeError as exc:
            raise self._undecodable(self.line + self._eols(block, 0, exc.start) + 1, exc) from None

    def available(self) -> int:
        return len(self.buf) - self.pos

    def block(self, size: int) -> Any:
        """Whole lines from the current position, about `size` characters (empty at the end)."""
        while self.available() < size and self._fill():
            pass
        buf, pos = self.buf, self.pos
        limit = min(len(buf), pos + size)
        end = _line_end_before(buf, pos, limit, self.eof, self._cr, self._nl)
        while end < 0:
            if self.eof:
                return buf[pos:]
            if self.available() > self._max_line:
                raise CsvFormatError(self.line + 1, f"a line longer than {format_size(self._max_line)} "
                                     "(an unterminated quote?)")
            self._fill()
            buf, pos = self.buf, self.pos
            end = _line_end_before(buf, pos, len(buf), self.eof, self._cr, self._nl)
        return buf[pos:end]

    def consume(self, count: int, lines: int | None = None) -> None:
        """Advance past `count` characters already handled (whole lines; `lines` of them when known)."""
        self.line += self._eols(self.buf, self.pos, self.pos + count) if lines is None else lines
        self.pos += count
        self.consumed += count

    def lines(self) -> Iterator[str]:
        """Lines as ``open(newline="")`` splits them; sets `exhausted` when the stream ends."""
        while True:
            match = self._eol.search(self.buf, self.pos)
            while match is None or (match.end() - match.start() == 1 and match.group() == self._cr
                                    and match.end() == len(self.buf) and not self.eof):
                if self.available() > self._max_line:
                    raise CsvFormatError(self.line + 1, f"a line longer than {format_size(self._max_line)}")
                if not self._fill():
                    break
                match = self._eol.search(self.buf, self.pos)
            end = len(self.buf) if match is None else match.end()
            if end == self.pos:
                self.exhausted = True
                return
            text = self.buf[self.pos : end]
            self.pos = end
            self.consumed += len(text)
            if match is not None:
                self.line += 1
            if self.binary:
                try:
                    text = text.decode(self._encoding, self._errors)
                except UnicodeDecodeError as exc:
                    raise self._undecodable(self.line + (match is None), exc) from None
            yield text


def _count_eols(text: str, start: int, end: int) -> int:
    crlf = text.count("\r\n", start, end)
    return text.count("\n", start, end) + text.count("\r", start, end) - crlf


def _line_end_before(buf: Any, start: int, limit: int, eof: bool, cr: Any, nl: Any) -> int:
    """The end of the last complete line in ``buf[start:limit]`` (-1 if none).

    A ``\\r`` ends a line together with a ``\\n`` right after it (even past
    `limit`); at the very end of the buffer it only ends one at the end of the
    stream, since a ``\\n`` may come with the next read.
    """
    end: int = max(buf.rfind(nl, start, limit), buf.rfind(cr, start, limit))
    while end >= 0 and buf[end : end + 1] == cr:
        if end + 1 < len(buf):
            return end + 2 if buf[end + 1 : end + 2] == nl else end + 1
        if eof:
            break
        end = max(buf.rfind(nl, start, end), buf.rfind(cr, start, end))
    return end + 1 if end >= 0 else -1


_FIELD_HINT = "raise max_field if the value is real, else look for an unterminated quote"


class _Sink:
    """Collects what csv.writer writes."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts.clear()
        return text


class Rewriter:
    """Rewrites one file: `run` reads a `LineSource` and hands output text to `write`."""

    def __init__(self, options: Options, write: Callable[[Any], None], encoding: str | None = None) -> None:
        """`write` takes str, or bytes already in `encoding` when the fast path runs on bytes.

        `encoding` (the input's, when the output's is the same and both are
        strict) lets the fast path work on undecoded bytes.
        """
        from ferryman.steps.csv.fast import FastPlan

        self.options = options
        self.write = write
        self.stats = Stats()
        self._sink = _Sink()
        self._writer = csv.writer(self._sink, **options.output.kwargs())
        self._header: list[str] | None = None
        self._select: list[int] | None = None
        self._plan = FastPlan.build(options, encoding) if options.fast else None
        self.binary = self._plan is not None and self._plan.binary

    def run(self, source: LineSource) -> Stats:
        if self._plan is None:
            self._slow(source, None)
            return self.stats
        plan, size = self._plan, CHUNK
        max_block = max(CHUNK, min(2 * self.options.max_field, MAX_BLOCK))
        shrunk = False
        while True:
            text = source.block(size)
            if not text:
                break
            final = source.eof and len(text) == source.available()
            out: Any = None
            raw = text
            text = plan.prepare(raw)  # in binary mode the file's bytes one for one: str operations are faster
            if source.binary:
                source.check(raw)
            cut = len(text)  # blocks end at a line end: most of the time at the end of a record too
            out = plan.transform(text, final)
            if out is None and plan.odd:
                cut = plan.cut(text, final)
                if cut > 0:
                    out = plan.transform(text[:cut], False)
            if out is not None and source.binary:
                out = out.encode("latin-1")
            if out is not None:
                self.write(out)
                source.consume(cut, plan.lines)
                self.stats.fast_chars += cut
                size = min(size * 2, CHUNK)
                shrunk = False
            elif size > MIN_BLOCK and cut != 0:
                size = max(size // 4, MIN_BLOCK)
                shrunk = True  # no growing again before progress: shrink and grow would loop for ever
            elif cut == 0 and plan.odd and not final and size < max_block and not shrunk:
                size = min(max(size, CHUNK) * 4, max_block)  # a record longer than the block: a multi-MB value
            else:
                self._slow(source, max(size, 1))
                size, shrunk = MIN_BLOCK, False
        self.stats.rows += plan.rows
        return self.stats

    def _slow(self, source: LineSource, until: int | None) -> None:
        """The reference loop over rows, from the current position until `until` characters are done."""
        start = source.consumed
        base = source.line
        max_field = self.options.max_field
        allow_fields(max_field)
        reader = csv.reader(source.lines(), **self.options.input.kwargs())
        row_line = base + 1
        record_start = start
        try:
            for row in reader:
                if source.exhausted:
                    raise CsvFormatError(
                        row_line, "the file ends inside a quoted field (unterminated quote)"
                    )
                if source.consumed - record_start > max_field:  # only a record this long can hold such a field
                    self._check_fields(row, row_line)
                self._row(row, base + reader.line_num)
                row_line = base + reader.line_num + 1
                record_start = source.consumed
                if until is not None and source.consumed - start >= until:
                    break
        except csv.Error as exc:
            message = str(exc)
            if "field limit" in message:
                raise CsvFormatError(row_line, f"{self._record_name()}: a value longer than max_field "
                                     f"({max_field} characters; {_FIELD_HINT})") from None
            raise CsvFormatError(base + reader.line_num, message) from None
        except ValueError as exc:  # QUOTE_NONNUMERIC input: an unquoted value that is not a number
            raise CsvFormatError(base + reader.line_num, f"{exc} (input.quoting is 'nonnumeric')") from None
        finally:
            self.stats.slow_chars += source.consumed - start
            text = self._sink.take()
            if text:
                self.write(text)

    def _record_name(self) -> str:
        rows = self.stats.rows + (self._plan.rows if self._plan is not None else 0)
        return f"row {rows + 1}"

    def _check_fields(self, row: list[Any], line: int) -> None:
        """Fail on the first value longer than ``max_field``, naming its row and column."""
        limit = self.options.max_field
        for column, value in enumerate(row, 1):
            if isinstance(value, str) and len(value) > limit:
                raise CsvFormatError(line, f"{self._record_name()}, column {column}: a value of {len(value)} "
                                     f"characters, over max_field ({limit}; {_FIELD_HINT})")

    def _row(self, row: list[Any], line: int) -> None:
        options = self.options
        if not row and options.skip_blank_lines:
            return
        if options.columns is not None or options.rename or options.check_columns:
            row = self._reshape(row, line)
        if options.rules:
            row = [self._replace(v) if isinstance(v, str) else v for v in row]
        try:
            self._writer.writerow(row)
        except csv.Error as exc:
            raise CsvFormatError(line, f"cannot write this row in the output dialect: {exc}") from None
        self.stats.rows += 1
        if len(self._sink.parts) >= 4096:
            self.write(self._sink.take())

    def _replace(self, value: str) -> str:
        for rule in self.options.rules:
            value = rule.pattern.sub(rule.repl, value)
        return value

    def _reshape(self, row: list[Any], line: int) -> list[Any]:
        """Header handling: check column counts, select and rename columns."""
        options = self.options
        if not row:
            return row
        if self._header is None:
            self._header = [str(v) for v in row]
            if options.columns is not None:
                missing = [c for c in options.columns if c not in self._header]
                if missing:
                    raise CsvFormatError(
                        line, f"no column {', '.join(map(repr, missing))} in the header (it has: "
                        f"{', '.join(map(repr, self._header))})"
                    )
                self._select = [self._header.index(c) for c in options.columns]
            names = options.columns if options.columns is not None else self._header
            return [options.rename.get(name, name) for name in names]
        if options.check_columns and len(row) != len(self._header):
            raise CsvFormatError(line, f"{len(row)} fields where the header has {len(self._header)}")
        if self._select is None:
            return row
        return [row[i] if i < len(row) else "" for i in self._select]
