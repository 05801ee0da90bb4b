"""The csv step's output is the csv module's, byte for byte, on random inputs and dialects (hypothesis).

Small block sizes force every input through many fast-path blocks, block
splits and slow-path regions, so the seams between them are exercised too.
"""

from __future__ import annotations

import csv
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferryman.steps.csv import rewrite as csv_rewrite
from ferryman.steps.csv.dialect import CsvFormatError, Dialect, Options, Rule
from steps.csv_reference import Unterminated, reference, rewrite

ALPHABET = st.sampled_from([*list('ab,;"\r\n \t|\'x\\é'), "\r\n", '""', "\x00", ",,", '","'])
TEXT = st.lists(ALPHABET, max_size=60).map("".join)
VALUE = st.text(alphabet=st.sampled_from(list('ab,;"\r\n |\\é')), max_size=6)
ROWS = st.lists(st.lists(VALUE, max_size=4), max_size=8)

QUOTINGS = [csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, csv.QUOTE_NONE]


@st.composite
def dialects(draw: st.DrawFn, output: bool) -> Dialect:
    quoting = draw(st.sampled_from(QUOTINGS)) if draw(st.integers(0, 3)) == 0 else csv.QUOTE_MINIMAL
    escape = draw(st.sampled_from([None, None, None, "\\"]))
    if quoting == csv.QUOTE_NONE and escape is None:
        escape = "\\"
    return Dialect(
        delimiter=draw(st.sampled_from([",", ",", ";", "|", "\t"])),
        quotechar=draw(st.sampled_from(['"', '"', '"', "'"])),
        quoting=quoting, escapechar=escape,
        doublequote=draw(st.sampled_from([True, True, True, False])),
        skipinitialspace=draw(st.sampled_from([False, False, False, True])),
        lineterminator=draw(st.sampled_from(["\r\n", "\n", "\r", "\r\n"])) if output else "\r\n",
        strict=False if output else draw(st.sampled_from([False, False, True])),
    )


RULES = st.lists(st.sampled_from([
    Rule(re.compile(r"\r?\n"), " "), Rule(re.compile(r"[\r\n]+"), " "), Rule(re.compile("\n"), ""),
    Rule(re.compile(","), ";"), Rule(re.compile("a"), "A"), Rule(re.compile(r"\s+"), "_"),
    Rule(re.compile(r"(\r)(\n)"), r"\2\1"), Rule(re.compile(r"\n"), '"'),
]), max_size=2)


@st.composite
def options(draw: st.DrawFn) -> Options:
    return Options(input=draw(dialects(False)), output=draw(dialects(True)), rules=draw(RULES),
                   skip_blank_lines=draw(st.sampled_from([False, False, True])))


def same_as_reference(text: str, opts: Options, read_size: int) -> None:
    same_as_reference_in(text, opts, read_size, binary=False)
    same_as_reference_in(text, opts, read_size, binary=True)


def same_as_reference_in(text: str, opts: Options, read_size: int, binary: bool) -> None:
    try:
        want: str | type[Exception] = reference(text, opts)
    except (csv.Error, Unterminated, ValueError):
        want = CsvFormatError
    try:
        got: str | type[Exception] = rewrite(text, opts, read_size, binary=binary)
    except CsvFormatError:
        got = CsvFormatError
    assert got == want, (text, opts, binary)


@pytest.fixture(autouse=True)
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_rewrite, "CHUNK", 16)
    monkeypatch.setattr(csv_rewrite, "MIN_BLOCK", 4)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, opts=options(), read_size=st.sampled_from([1, 3, 7, 64, 1 << 20]))
def test_random_text_any_dialect(text: str, opts: Options, read_size: int) -> None:
    same_as_reference(text, opts, read_size)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, written_as=dialects(True), opts=options(), read_size=st.sampled_from([2, 5, 1 << 20]))
def test_csv_written_by_the_csv_module(rows: list[list[str]], written_as: Dialect, opts: Options,
                                       read_size: int) -> None:
    """Well-formed files (what real exporters write), read with the matching input dialect."""
    import io

    buffer = io.StringIO()
    try:
        csv.writer(buffer, **written_as.kwargs()).writerows(rows)
    except csv.Error:
        return
    reading = Dialect(delimiter=written_as.delimiter, quotechar=written_as.quotechar, quoting=csv.QUOTE_MINIMAL,
                      escapechar=written_as.escapechar, doublequote=written_as.doublequote)
    same_as_reference(buffer.getvalue(), Options(input=reading, output=opts.output, rules=opts.rules), read_size)


@settings(max_examples=1000, deadline=None)
@given(rows=ROWS, read_size=st.sampled_from([3, 1 << 20]), lt=st.sampled_from(["\r\n", "\n"]),
       rules=RULES)
def test_the_common_rewrite_comma_to_semicolon(rows: list[list[str]], read_size: int, lt: str,
                                                rules: list[Rule]) -> None:
    """The case the fast path is for: standard input, `;` output, newlines in values replaced."""
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=lt).writerows(rows)
    opts = Options(output=Dialect(delimiter=";", lineterminator=lt), rules=rules)
    same_as_reference(buffer.getvalue(), opts, read_size)
