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
import re
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

from ferryman.steps.csv_rewrite import Dialect, Options, Rule

SENTINEL = "\x00"
"""Joins parts for whole-list operations; blocks holding it go the slow way."""

_EOL_CHARS = "\r\n"


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


class FastPlan:
    """The fast path for one set of options (None from `build` when they need the slow path)."""

    def __init__(self, options: Options, quoting: set[str], limit: int) -> None:
        din, dout = options.input, options.output
        assert din.quotechar is not None
        self.q = din.quotechar
        self.d_in = din.delimiter
        self.d_out = dout.delimiter
        self.lt = dout.lineterminator
        self.rules = [(rule.pattern, rule.repl) for rule in options.rules]
        self.limit = limit
        self.rows = 0
        """Records written so far."""
        # values holding these are quoted by the writer; unquoted input fields holding one need the slow path
        self.special = re.compile(f"[{re.escape(''.join(sorted(quoting)))}]")
        # a quote must open or close a field: text between quoted parts starts and ends at a delimiter
        # or a line end; searched forward and on the reversed text, each a search for a literal
        self.bad = re.compile(f"{SENTINEL}[^{re.escape(self.d_in + _EOL_CHARS + SENTINEL)}]")
        self.extra = "".join(sorted(quoting - {self.d_in, self.q, "\r", "\n"}))
        self.structure = re.compile(f"[{re.escape(self.d_in + self.q + _EOL_CHARS)}]")

    @classmethod
    def build(cls, options: Options) -> FastPlan | None:
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
        return cls(options, quoting, csv.field_size_limit())

    def cut(self, text: str, final: bool) -> int:
        """The end of the last record in `text` (whole lines) by quote parity; 0 when there is none.

        Only meaningful when the block then passes `transform`'s structure check.
        """
        q = self.q
        end = len(text)
        odd = text.count(q) % 2
        if final and not odd:
            return end
        while odd:
            k = text.rfind(q, 0, end)
            eol = max(text.rfind("\n", 0, k), text.rfind("\r", 0, k))
            if eol < 0:
                return 0
            odd = (odd + text.count(q, eol + 1, end)) % 2
            end = eol + 1
        return end

    def transform(self, text: str, final: bool) -> str | None:
        """The csv writer's output for the whole records in `text`, or None to use the slow path."""
        if SENTINEL in text:
            return None
        q = self.q
        parts = text.split(q)
        if len(parts) % 2 == 0:
            return None
        outs = parts[0::2]
        joined_outs = SENTINEL.join(outs)
        if self.bad.search(joined_outs) or self.bad.search(joined_outs[::-1]):
            return None
        if any(char in joined_outs for char in self.extra):
            return None
        ins = parts[1::2]
        limit = self.limit
        if ins and max(map(len, ins)) > limit:
            return None
        if len(text) > limit and not self._runs_within_limit(text):
            return None
        last = len(outs) - 1
        escapes: list[int] = []
        j = 0
        while True:
            try:
                j = outs.index("", j + 1, last)
            except ValueError:
                break
            escapes.append(j)
        if escapes and not self._chains_within_limit(ins, escapes):
            return None

        if self.rules and ins:
            joined_ins = SENTINEL.join(ins)
            for pattern, repl in self.rules:
                joined_ins = pattern.sub(repl, joined_ins)
            new_ins = joined_ins.split(SENTINEL)
        else:
            new_ins = ins
        if self.d_in != self.d_out:
            joined_outs = joined_outs.replace(self.d_in, self.d_out)
        joined_outs = self._line_ends(joined_outs)
        new_outs = joined_outs.split(SENTINEL) if ins else [joined_outs]

        search = self.special.search
        quoted = [p if search(p) is None else q + p + q for p in new_ins]
        for j in escapes:  # a value with an escaped quote always keeps its quotes
            quoted[j - 1] = q + new_ins[j - 1] + q
            quoted[j] = q + new_ins[j] + q
        i = -1
        while True:  # a record of one empty value is written as ""
            try:
                i = new_ins.index("", i + 1)
            except ValueError:
                break
            before, after = outs[i], outs[i + 1]
            starts = (before[-1] in _EOL_CHARS) if before else i == 0
            ends = (after[0] in _EOL_CHARS) if after else i + 1 == last
            if starts and ends:
                quoted[i] = q + q

        parts[0::2] = new_outs
        parts[1::2] = quoted
        out = "".join(parts)
        self.rows += joined_outs.count(self.lt)
        if final and text and not (outs[-1] and outs[-1][-1] in _EOL_CHARS):
            out += self.lt
            self.rows += 1
        return out

    def _line_ends(self, text: str) -> str:
        """Every ``\\r\\n``, ``\\r`` and ``\\n`` (outside quotes) as the output line terminator."""
        lf, cr = text.count("\n"), text.count("\r")
        if cr == 0:
            return text if self.lt == "\n" else text.replace("\n", self.lt)
        if lf == cr == text.count("\r\n") and self.lt == "\r\n":
            return text
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text if self.lt == "\n" else text.replace("\n", self.lt)

    def _runs_within_limit(self, text: str) -> bool:
        """No run of non-structural characters longer than the field size limit (checked by windows)."""
        step = self.limit // 2
        search = self.structure.search
        return all(search(text, start, start + step) is not None for start in range(0, len(text) - step, step))

    def _chains_within_limit(self, ins: list[str], escapes: list[int]) -> bool:
        """Values with escaped quotes (several inside parts) stay within the field size limit."""
        total, previous = 0, -2
        for j in escapes:
            total = total + len(ins[j]) + 1 if j == previous + 1 else len(ins[j - 1]) + len(ins[j]) + 1
            if total > self.limit:
                return False
            previous = j
        return True
