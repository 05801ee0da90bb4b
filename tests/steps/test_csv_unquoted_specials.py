"""The fast path's quoting of unquoted values that the output dialect must quote (``a;b`` read with ``,``
and written with ``;``): byte for byte the csv module's, on random inputs, with the density guard off so
that every block takes that path."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferryman.steps.csv import fast
from ferryman.steps.csv import rewrite as csv_rewrite
from ferryman.steps.csv.dialect import Dialect, Options, Rule
from steps.csv_reference import reference, rewrite
from steps.test_csv_equivalence import RULES, TEXT, dialects, same_as_reference

VALUE = st.text(alphabet=st.sampled_from(list('ab,;|\t"\r\n é\\')), max_size=6)
ROWS = st.lists(st.lists(VALUE, max_size=5), max_size=8)


@pytest.fixture(autouse=True)
def always_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "DENSE", 0)
    monkeypatch.setattr(csv_rewrite, "CHUNK", 16)
    monkeypatch.setattr(csv_rewrite, "MIN_BLOCK", 4)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, read_size=st.sampled_from([3, 1 << 20]), out=st.sampled_from([";", "|", "\t"]),
       lt=st.sampled_from(["\r\n", "\n", "\r"]), rules=RULES)
def test_values_holding_the_output_delimiter(rows: list[list[str]], read_size: int, out: str, lt: str,
                                             rules: list[Rule]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    same_as_reference(buffer.getvalue(), Options(output=Dialect(delimiter=out, lineterminator=lt), rules=rules),
                      read_size)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, output=dialects(True), read_size=st.sampled_from([1, 7, 1 << 20]))
def test_random_text(text: str, output: Dialect, read_size: int) -> None:
    same_as_reference(text, Options(output=output), read_size)


def test_the_fast_path_takes_such_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_rewrite, "CHUNK", 1 << 20)
    text = 'id,name,note\r\n1,Doe; Jane,"a, b"\r\n2,x;y;z,plain\r\n3,,"q ""x"";"\r\n' * 50
    opts = Options(output=Dialect(delimiter=";"))
    assert rewrite(text, opts, binary=True) == reference(text, opts)
    rewriter = csv_rewrite.Rewriter(opts, lambda _: None, "utf-8")
    stats = rewriter.run(csv_rewrite.LineSource(io.BytesIO(text.encode()), "utf-8", "strict", binary=True))
    assert stats.slow_chars == 0 and stats.fast_chars == len(text)
