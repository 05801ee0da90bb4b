"""The csv step's fast path: rewrite a block of whole records with whole-block string operations.

Splitting a block on the quote character gives parts that alternate between
*outside* quotes (delimiters, line ends and unquoted fields) and *inside*
quotes (quoted values; an empty outside part between two inside parts is an
escaped ``""``).  That reading is only the csv reader's own when every quote
opens or closes a field, which `FastPlan.transform` verifies with one regex
over the joined outside parts; then:

- outside parts: input delimiter → output delimiter, line ends → the output
  line terminator (``str.replace``: C speed);
- inside parts: ``replace`` rules run once over all of them joined (only
  rules whose matches can never touch a quote, a line end outside quotes or
  an unquoted field qualify, see `fast_rule`);
- each quoted value keeps its quotes only where the csv writer would quote
  it (the writer's rule is probed at start-up, so it follows the running
  Python's csv module, not a copy of it).

Anything it cannot prove (a quote inside an unquoted field, text after a
closing quote, an unquoted value that would need quoting in the output, a
field over the csv field size limit, NUL characters, …) makes `transform`
return None, and the caller runs the csv module on that region instead.
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
import re
from collections.abc import Callable
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from ferryman.steps.csv.dialect import Dialect, Options, Rule

SENTINEL = "\x00"
"""Joins parts for whole-list operations; blocks holding it go the slow way."""

_EOL_CHARS = "\r\n"

DENSE = 8
"""Quoting unquoted fields in bulk pays while at most one character in this many needs it."""


def _writes(dialect: Dialect, row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, **dialect.kwargs()).writerow(row)
    return out.getvalue()


def quoting_chars(dialect: Dialect, candidates: set[str]) -> set[str] | None:
    """The characters among `candidates` that make this Python's csv writer quote a value.

    None when the writer does anything else the fast path does not model
    (quoting leading or trailing spaces, not quoting a lone empty value).
    """
    q, d, lt = dialect.quotechar, dialect.delimiter, dialect.lineterminator
    assert q is not None
    expected = {
        (" a",): " a" + lt, ("a ",): "a " + lt, ("",): q + q + lt, ("", ""): d + lt, (): lt, ("a", "b"): f"a{d}b{lt}",
    }
    for row, want in expected.items():
        if _writes(dialect, list(row)) != want:
            return None
    chosen = set()
    for char in candidates:
        written = _writes(dialect, ["a" + char + "b"])
        if written.startswith(q):
            chosen.add(char)
        elif written != "a" + char + "b" + lt:
            return None
    return chosen


def pattern_alphabet(pattern: str, flags: int) -> set[str] | None:
    """Every character a match of `pattern` can consist of, or None when that is not a small known set.

    Only literals, character sets of literals and ranges, repeats, groups and
    alternatives qualify: anchors, look-arounds, back-references, ``.``,
    negated sets and classes like ``\\s`` make matching depend on more than
    the characters matched.
    """
    if flags & (re.IGNORECASE | re.VERBOSE):
        return None
    try:
        parsed = sre_parse.parse(pattern, flags)
    except re.error:
        return None
    if parsed.getwidth()[0] == 0:
        return None  # an empty match would insert the replacement everywhere
    chars: set[str] = set()

    def walk(items: object) -> bool:
        for op, arg in items:  # type: ignore[attr-defined]
            if op is sre.LITERAL:
                chars.add(chr(arg))
            elif op is sre.IN:
                for sub_op, sub_arg in arg:
                    if sub_op is sre.LITERAL:
                        chars.add(chr(sub_arg))
                    elif sub_op is sre.RANGE and sub_arg[1] - sub_arg[0] < 256:
                        chars.update(chr(c) for c in range(sub_arg[0], sub_arg[1] + 1))
                    else:
                        return False
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
                if not walk(arg[2]):
                    return False
            elif op is sre.SUBPATTERN:
                if not walk(arg[3]):
                    return False
            elif op is sre.BRANCH:
                if not all(walk(branch) for branch in arg[1]):
                    return False
            else:
                return False
        return True

    return chars if walk(parsed) else None


def fast_rule(rule: Rule, input_dialect: Dialect) -> bool:
    """Whether `rule` can run on the joined quoted values and give what it gives value by value.

    Its matches must consist only of characters that never occur in an
    unquoted input field (line ends and the input delimiter), so unquoted
    fields are untouched, and never hold a quote or the sentinel, so no match
    spans two values; its replacement must not bring in a quote or the sentinel.
    """
    alphabet = pattern_alphabet(rule.pattern.pattern, rule.pattern.flags & ~re.UNICODE)
    if alphabet is None or not alphabet <= {"\r", "\n", input_dialect.delimiter}:
        return False
    if "\\" in rule.repl and not _plain_escapes(rule.repl):
        return False
    literal = re.sub(r"\\g<\w+>|\\\d+", "", rule.repl)
    return not set(literal) & {input_dialect.quotechar or "", SENTINEL}


def _plain_escapes(repl: str) -> bool:
    """True when a replacement's backslashes are group references or \\n, \\r, \\t, \\\\ only."""
    return re.fullmatch(r"(?:[^\\]|\\[1-9]\d*|\\g<\w+>|\\[nrt\\])*", repl) is not None


def literal_chain(rule: Rule, alphabet: set[str]) -> list[tuple[str, str]] | None:
    """``str.replace`` steps that do what ``re.sub`` does for `rule`, when that is provably so.

    The pattern is expanded into the literal strings it can match (small
    patterns like ``\\r?\\n`` or ``[\\r\\n]`` only); replacing them longest first
    is then checked against ``re.sub`` on every string of up to 6 characters
    over the pattern's alphabet plus one other character.
    """
    if not re.fullmatch(r"[^\\]*", rule.repl):
        return None
    try:
        parsed = sre_parse.parse(rule.pattern.pattern, rule.pattern.flags & ~re.UNICODE)
    except re.error:
        return None

    def expand(items: object) -> list[str] | None:
        results = [""]
        for op, arg in items:  # type: ignore[attr-defined]
            options: list[str] | None
            if op is sre.LITERAL:
                options = [chr(arg)]
            elif op is sre.IN and all(sub_op is sre.LITERAL for sub_op, _ in arg):
                options = [chr(c) for _, c in arg]
            elif op is sre.SUBPATTERN:
                options = expand(arg[3])
            elif op is sre.BRANCH:
                options = []
                for branch in arg[1]:
                    sub = expand(branch)
                    if sub is None:
                        return None
                    options += sub
            elif op is sre.MAX_REPEAT and arg[1] <= 2:
                inner = expand(arg[2])
                if inner is None:
                    return None
                options = []
                for count in range(arg[1], arg[0] - 1, -1):
                    options += ["".join(p) for p in _product(inner, count)]
            else:
                return None
            if options is None:
                return None
            results = [r + o for r in results for o in options]
            if len(results) > 16:
                return None
        return results

    strings = expand(parsed)
    if not strings or "" in strings:
        return None
    chain = [(s, rule.repl) for s in sorted(dict.fromkeys(strings), key=len, reverse=True)]
    letters = [*sorted(alphabet), "x"]
    for length in range(7):
        for combo in _product(letters, length):
            sample = "".join(combo)
            replaced = sample
            for old, new in chain:
                replaced = replaced.replace(old, new)
            if replaced != rule.pattern.sub(rule.repl, sample):
                return None
    return chain


def _product(items: list[str], count: int) -> list[tuple[str, ...]]:
    import itertools

    return list(itertools.product(items, repeat=count))


class FastPlan:
    """The fast path for one set of options (None from `build` when they need the slow path).

    Works on str, or on bytes (`binary`) when the file's encoding is
    ASCII-safe and the same on both sides: every constant below is then bytes.
    """

    def __init__(self, options: Options, quoting: set[str], limit: int, encoding: str | None) -> None:
        din, dout = options.input, options.output
        assert din.quotechar is not None
        self.binary = encoding is not None
        conv: Callable[[str], Any] = str
        self.encoding = encoding
        q = din.quotechar
        self.q = conv(q)
        self.qq = conv(q + q)
        self.sentinel = conv(SENTINEL)
        self.empty = conv("")
        self._pick_separator = (self.qq, self.sentinel).__getitem__
        self._pick_quote = (self.empty, self.q).__getitem__
        self.d_in = conv(din.delimiter)
        self.d_out = conv(dout.delimiter)
        self.lt = conv(dout.lineterminator)
        self.cr, self.nl, self.crlf = conv("\r"), conv("\n"), conv("\r\n")
        self.eols = (self.cr, self.nl)
        self.limit = limit
        self.rows = 0
        """Records written so far."""
        # values holding these are quoted by the writer; unquoted input fields holding one need the slow path
        kept = "".join(sorted(quoting)) + SENTINEL
        delete = bytes(b for b in range(256) if chr(b) not in kept)
        others = re.compile(f"[^{re.escape(kept)}]+")
        self._specials_only: Callable[[str], str] = lambda text: _bytewise(
            text, lambda b: b.translate(None, delete), lambda t: others.sub("", t)
        )
        # a quoted field must be a whole field: text between quoted fields starts and ends at a delimiter or
        # a line end; searched forward and on the reversed text, each a search for a literal
        # (after swapping the delimiters in the whole block, the outside delimiter is the output's)
        extra = sorted(quoting - {din.delimiter, q, "\r", "\n"})
        self.checks = {
            swapped: (
                re.compile(conv(f"{SENTINEL}[^{re.escape(delimiter + _EOL_CHARS + SENTINEL)}]")),
                [conv(other if c == delimiter else c) for c in extra],
            )
            for swapped, delimiter, other in ((False, din.delimiter, dout.delimiter),
                                              (True, dout.delimiter, din.delimiter))
        }
        # an unquoted field holding one of `extra` (in the block's own, possibly swapped, view): the writer
        # quotes it; it cannot hold a quote or a line end (the structure check saw to that)
        self.specials = {
            swapped: re.compile(conv(f"[{re.escape(''.join(chars))}]"))
            for swapped, chars in ((False, self.checks[False][1]), (True, self.checks[True][1])) if chars
        }
        # a run from such a character to the end of its field (forwards, or backwards on reversed text)
        self.to_field_end = {
            swapped: re.compile(conv(
                f"([{re.escape(''.join(chars))}][^{re.escape(delimiter + _EOL_CHARS + SENTINEL)}]*)"
            ))
            for swapped, delimiter, chars in ((False, din.delimiter, self.checks[False][1]),
                                              (True, dout.delimiter, self.checks[True][1])) if chars
        }
        self.swapping = din.delimiter != dout.delimiter
        swaps = str.maketrans({din.delimiter: dout.delimiter, dout.delimiter: din.delimiter})
        try:
            table = bytes.maketrans((self.d_in + self.d_out).encode("latin-1"),
                                    (self.d_out + self.d_in).encode("latin-1"))
        except UnicodeEncodeError:
            table = None
        self._byte_swaps = table if self.swapping else None
        self._swap: Callable[[str], str] = lambda text: _bytewise(
            text, (lambda b: b.translate(table)) if table else None, lambda t: t.translate(swaps)
        )
        self.lines = 0
        """Physical lines in the last block `transform` rewrote."""
        self.odd = False
        """The last block `transform` refused had an odd number of quotes."""
        self.structure = re.compile(conv(f"[{re.escape(din.delimiter + q + _EOL_CHARS)}]"))
        self.rules: list[tuple[Any, Any]] = []
        self.chains: list[list[tuple[Any, Any]] | None] = []
        for rule in options.rules:
            chain = literal_chain(rule, pattern_alphabet(rule.pattern.pattern, rule.pattern.flags) or set())
            # with `encoding`, text is the file's bytes seen as latin-1: replacements must be too
            view: Callable[[str], str] = (lambda t: t.encode(encoding).decode("latin-1")) if encoding else str
            self.rules.append((rule.pattern, view(rule.repl)))
            self.chains.append([(view(a), view(b)) for a, b in chain] if chain else None)

    @classmethod
    def build(cls, options: Options, encoding: str | None = None) -> FastPlan | None:
        """The plan for `options`; on bytes when `encoding` is given and every character involved is ASCII."""
        din, dout = options.input, options.output
        if (
            options.columns is not None or options.rename or options.check_columns or options.skip_blank_lines
            or din.quoting not in (csv.QUOTE_MINIMAL, csv.QUOTE_ALL) or din.escapechar is not None
            or not din.doublequote or din.skipinitialspace or din.quotechar is None
            or dout.quoting != csv.QUOTE_MINIMAL or dout.escapechar is not None or not dout.doublequote
            or dout.skipinitialspace or dout.quotechar != din.quotechar
        ):
            return None
        q = din.quotechar
        if (
            len({din.delimiter, dout.delimiter} & {q, "\r", "\n", SENTINEL})
            or din.delimiter == q or not dout.lineterminator
            or set(dout.lineterminator) & {din.delimiter, dout.delimiter, q, SENTINEL}
        ):
            return None
        if not all(fast_rule(rule, din) for rule in options.rules):
            return None
        candidates = {chr(c) for c in range(1, 128)} | {din.delimiter, dout.delimiter, q, *dout.lineterminator}
        quoting = quoting_chars(dout, candidates)
        if quoting is None or q not in quoting or dout.delimiter not in quoting:
            return None
        if encoding is not None and not _ascii_only(options, quoting, encoding):
            encoding = None
        return cls(options, quoting, options.max_field, encoding)

    def cut(self, text: Any, final: bool) -> int:
        """The end of the last record in `text` (whole lines) by quote parity; 0 when there is none.

        Only meaningful when the block then passes `transform`'s structure check.  The last record ends
        at the last line end outside quotes: found in the outside parts of the split on quotes, joined, so
        that a multi-MB quoted value with many lines costs a few C-level passes, not a Python loop per line.
        """
        q, sentinel = self.q, self.sentinel
        if sentinel in text:
            return 0
        parts = text.split(q)
        if len(parts) % 2:
            return len(text)  # an even number of quotes: the block ends outside quotes
        joined = sentinel.join(parts[0::2])
        eol: int = max(joined.rfind(self.nl), joined.rfind(self.cr))
        if eol < 0:
            return 0
        index: int = joined.count(sentinel, 0, eol)  # the outside part holding it: parts[2 * index]
        offset: int = eol - (joined.rfind(sentinel, 0, eol) + 1)
        before = 2 * index
        return sum(map(len, parts[:before])) + before + offset + 1

    def prepare(self, block: str | bytes) -> str:
        """The text `transform` takes: a block of whole records (the file's bytes, seen as latin-1, in
        binary mode), with the input and output delimiters swapped everywhere when they differ."""
        if isinstance(block, bytes):
            return (block.translate(self._byte_swaps) if self._byte_swaps else block).decode("latin-1")
        return self._swap(block) if self.swapping else block

    def transform(self, text: Any, final: bool) -> Any:
        """The csv writer's output for the whole records in `text` (from `prepare`), or None to use the
        slow path.

        Every step is one C-level operation over the block or over a list:
        no Python code runs per field.
        """
        sentinel, q, empty, cr, nl = self.sentinel, self.q, self.empty, self.cr, self.nl
        if sentinel in text:
            return None
        if len(text) > self.limit and not self._runs_within_limit(text):
            return None
        swapped = self.swapping  # `prepare` swapped the delimiters in the whole block
        parts = text.split(q)
        self.odd = len(parts) % 2 == 0
        if self.odd:
            return None  # the block ends inside quotes: `cut` it shorter
        outs = parts[0::2]
        joined_outs = sentinel.join(outs)
        bad, extra = self.checks[swapped]
        if bad.search(joined_outs) or bad.search(joined_outs[::-1]):
            return None  # a quote inside an unquoted field, or text after a closing quote
        if any(char in joined_outs for char in extra):
            # unquoted values the output has to quote: quote them here, once over the block
            joined_outs = self._quote_unquoted(joined_outs, swapped)
            if joined_outs is None:
                return None
            if swapped:  # inside them, the input delimiter stands for the output's (swapped by `prepare`)
                joined_outs = joined_outs.replace(self.d_in, self.d_out)
            outs = joined_outs.split(sentinel)
        ins = parts[1::2]
        if len(outs) > 2 and empty in outs[1:-1]:
            # between two quoted parts: an empty outside part is an escaped quote, anything else a new field
            middle = outs[1:-1]
            pieces: list[Any] = [None] * (2 * len(ins) - 1)
            pieces[0::2] = ins
            pieces[1::2] = map(self._pick_separator, map(bool, middle))
            joined = empty.join(pieces)
            field_outs = [outs[0], *filter(None, middle), outs[-1]]
        else:
            joined = sentinel.join(ins)
            field_outs = outs
        if len(joined) > self.limit and not self._gaps_within_limit(joined):
            return None
        if swapped:
            joined = self._swap(joined)  # the values' own delimiters back
        records, uniform = self._line_ends_outside(joined_outs)
        self.lines = records + _lines(joined, cr, nl, self.crlf)
        self.rows += records
        for (pattern, repl), chain in zip(self.rules, self.chains, strict=True):
            if chain is None:
                joined = pattern.sub(repl, joined)
            else:
                for old, new in chain:
                    joined = joined.replace(old, new)
        if not uniform:
            field_outs = self._line_ends(sentinel.join(field_outs)).split(sentinel)
        if not ins:
            out = field_outs[0]
        else:
            values = joined.split(sentinel)
            # the writer quotes a value holding a special character: keep just those, one bulk pass
            specials = self._specials_only(joined).split(sentinel)
            quotes = list(map(self._pick_quote, map(bool, specials)))
            if empty in values:
                self._lone_empty_values(quotes, values, outs if len(outs) <= 2 else
                                        [outs[0], *filter(None, outs[1:-1]), outs[-1]])
            pieces = [None] * (4 * len(values) + 1)
            pieces[0::4] = field_outs
            pieces[1::4] = quotes
            pieces[2::4] = values
            pieces[3::4] = quotes
            out = empty.join(pieces)
        if final and text and not outs[-1].endswith(self.eols):
            out += self.lt
            self.rows += 1
        return out

    def _quote_unquoted(self, text: Any, swapped: bool) -> Any:
        """`text` (outside quotes) with quotes around every unquoted field that holds a character the
        writer quotes; None when there are too many of them for this to beat the slow path.

        Two regex passes that each start at such a character (a charset prefix: the regex engine skips to
        it at C speed): forwards to the field's end, then over the reversed text to its start; each
        match gets a quote after it.
        """
        run = self.to_field_end[swapped]
        if len(self.specials[swapped].findall(text)) * DENSE > len(text):
            return None
        q = self.q
        pieces = run.split(text)
        pieces[1::2] = map(operator.add, pieces[1::2], itertools.repeat(q))
        text = self.empty.join(pieces)[::-1]
        pieces = run.split(text)
        pieces[1::2] = map(operator.add, pieces[1::2], itertools.repeat(q))
        return self.empty.join(pieces)[::-1]

    def _lone_empty_values(self, quotes: list[Any], values: list[Any], outs: list[Any]) -> None:
        """A record of one empty value is written as two quotes (an empty line would be no value at all)."""
        last, empty, i = len(outs) - 1, self.empty, -1
        while True:
            try:
                i = values.index(empty, i + 1)
            except ValueError:
                return
            before, after = outs[i], outs[i + 1]
            starts = before.endswith(self.eols) if before else i == 0
            ends = after.startswith(self.eols) if after else i + 1 == last
            if starts and ends:
                quotes[i] = self.q

    def _line_ends_outside(self, text: str) -> tuple[int, bool]:
        """(line ends in `text`, whether they all are the output's line terminator already)."""
        cr, nl = self.cr, self.nl
        lfs, crs = text.count(nl), text.count(cr)
        if not crs:
            return lfs, self.lt == nl
        crlfs = text.count(self.crlf)
        return lfs + crs - crlfs, self.lt == self.crlf and crs == lfs == crlfs

    def _line_ends(self, text: Any) -> Any:
        """Every ``\\r\\n``, ``\\r`` and ``\\n`` (outside quotes) as the output line terminator."""
        cr, nl, lt = self.cr, self.nl, self.lt
        crs = text.count(cr)
        if crs == 0:
            return text if lt == nl else text.replace(nl, lt)
        if lt == self.crlf and crs == text.count(nl) == text.count(self.crlf):
            return text
        text = text.replace(self.crlf, nl).replace(cr, nl)
        return text if lt == nl else text.replace(nl, lt)

    def _gaps_within_limit(self, joined: Any) -> bool:
        """No value (between two sentinels) longer than the field size limit (checked by windows)."""
        step, sentinel = self.limit // 2, self.sentinel
        return all(joined.find(sentinel, start, start + step) >= 0 for start in range(0, len(joined) - step, step))

    def _runs_within_limit(self, text: Any) -> bool:
        """No run of non-structural characters longer than the field size limit (checked by windows)."""
        step = self.limit // 2
        search = self.structure.search
        return all(search(text, start, start + step) is not None for start in range(0, len(text) - step, step))


def _lines(text: str, cr: str, nl: str, crlf: str) -> int:
    """Line ends in `text` as ``open(newline="")`` counts them."""
    crs = text.count(cr)
    return text.count(nl) + (crs - text.count(crlf) if crs else 0)


def _bytewise(text: str, on_bytes: Callable[[bytes], bytes] | None, on_text: Callable[[str], str]) -> str:
    """`on_bytes` on the latin-1 bytes of `text` when it has no other characters (a fast C pass), else `on_text`."""
    if on_bytes is not None:
        try:
            return on_bytes(text.encode("latin-1")).decode("latin-1")
        except UnicodeEncodeError:
            pass
    return on_text(text)


def _ascii_only(options: Options, quoting: set[str], encoding: str) -> bool:
    """Whether the plan's characters and patterns can be used as bytes of `encoding`."""
    din, dout = options.input, options.output
    chars = {din.delimiter, dout.delimiter, din.quotechar or "", *dout.lineterminator, *quoting}
    if not all(c.isascii() for c in chars):
        return False
    try:
        for rule in options.rules:
            rule.pattern.pattern.encode("ascii")
            rule.repl.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True
