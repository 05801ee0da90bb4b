"""The csv step's field limit end to end: real `ferryman run --once` on files with 1 MB and 5 MB values,
and a value over ``max_field`` failing the item with one line naming the row and column."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from support import ferryman


def write_config(folder: Path, extra: str = "") -> Path:
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"

[flows.exports]
retry = {{ attempts = 1 }}

[flows.exports.source]
type = "folder"
path = "in"
settle = "0s"

[[flows.exports.steps]]
type = "csv"
output = {{ delimiter = ";" }}
{extra}

[[flows.exports.steps]]
type = "deliver"
to = "out"
""")
    (folder / "in").mkdir()
    return config


def big_value(size: int, seed: int) -> str:
    """About `size` characters of text with embedded line breaks, doubled quotes, delimiters and accents."""
    rng = random.Random(seed)
    words = ["Zoë", "naïve", "café", 'say "hi"', "a, b", "x;y", "line\r\nbreak", "tab\there", "plain"]
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:size]


def reference(text: str) -> bytes:
    """What the csv module writes for this file re-delimited to ';' (the step's contract)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    before = csv.field_size_limit(64 << 20)
    try:
        for row in csv.reader(io.StringIO(text, newline="")):
            writer.writerow(row)
    finally:
        csv.field_size_limit(before)
    return out.getvalue().encode("utf-8")


def export(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def test_1_mb_and_5_mb_quoted_values_go_through_without_configuration(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    one, five = big_value(1 << 20, 1), big_value(5 << 20, 2)
    text = export([["id", "title", "document", "note"], ["1", "small", one, "après"],
                   ["2", "big, quoted", five, 'the "end"'], ["3", "", "", "x"]])
    (tmp_path / "in" / "docs.csv").write_bytes(text.encode("utf-8"))

    done = ferryman("run", "--once", "-c", str(config), cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    delivered = (tmp_path / "out" / "docs.csv").read_bytes()
    assert delivered == reference(text)
    assert len(delivered) > 6 << 20


def test_a_value_over_max_field_fails_the_item_naming_row_and_column(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'max_field = "1MiB"')
    text = export([["id", "title", "document"], ["1", "ok", "short"], ["2", "too long", big_value(1536 << 10, 3)]])
    (tmp_path / "in" / "docs.csv").write_bytes(text.encode("utf-8"))

    done = ferryman("run", "--once", "-c", str(config), cwd=tmp_path)

    printed = done.stdout + done.stderr
    assert done.returncode != 0
    assert not (tmp_path / "out" / "docs.csv").exists()
    lines = [line for line in printed.splitlines() if "max_field" in line]
    assert lines, printed
    assert "docs.csv" in lines[0] and "row 3, column 3" in lines[0] and "1572864 characters" in lines[0]
    assert "field limit (131072)" not in printed


def test_a_runaway_value_far_over_max_field_fails_with_the_row(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'max_field = "100KiB"')
    # an unterminated quote: the rest of the file becomes one value, far past the csv module's own check
    text = 'id,doc\r\n1,ok\r\n2,"never closed\r\n' + "more text, more lines\r\n" * 20000
    (tmp_path / "in" / "docs.csv").write_bytes(text.encode("utf-8"))

    done = ferryman("run", "--once", "-c", str(config), cwd=tmp_path)

    printed = done.stdout + done.stderr
    assert done.returncode != 0
    lines = [line for line in printed.splitlines() if "max_field" in line]
    assert lines and "row 3" in lines[0] and "line 3" in lines[0], printed
