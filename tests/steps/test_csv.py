"""csv step: dialects, encodings, BOM, columns, strict, blank lines, names, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ferryman.errors import PermanentError
from steps.harness import RunStep, build_step


def write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def out(result_files: list[Path] | None, index: int = 0) -> bytes:
    assert result_files is not None
    return result_files[index].read_bytes()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    return tmp_path / "in"


def test_the_itrp_rewrite(run_step: RunStep, inbox: Path) -> None:
    path = write(inbox, "people.csv", b'id,name,notes\n1,"Doe, Jane","line 1\nline 2"\n2,Bob,"say ""hi"""\n')
    result = run_step({"type": "csv", "output": {"delimiter": ";"},
                       "replace": [{"pattern": r"\r?\n", "with": " "}]}, [path])
    # the line ending of the input is kept (auto), values lose their line breaks, quotes only where needed
    assert out(result.files) == b'id;name;notes\n1;Doe, Jane;line 1 line 2\n2;Bob;"say ""hi"""\n'
    assert result.outputs["rows"] == 3
    assert path.read_bytes().startswith(b"id,name,notes\n")


def test_other_files_pass_through_and_name_template(run_step: RunStep, inbox: Path) -> None:
    data = write(inbox, "a.csv", b"x,y\r\n")
    other = write(inbox, "readme.txt", b"hello")
    result = run_step({"type": "csv", "name": "{stem}_semicolon.csv", "output": {"delimiter": ";"}}, [data, other])
    assert result.files is not None and [p.name for p in result.files] == ["a_semicolon.csv", "readme.txt"]
    assert result.files[1] == other and out(result.files) == b"x;y\r\n"


def test_encodings_and_bom(run_step: RunStep, inbox: Path) -> None:
    path = write(inbox, "latin.csv", "name,city\r\nJosé,Zürich\r\n".encode("cp1252"))
    result = run_step({"type": "csv", "input": {"encoding": "cp1252"}, "output": {"encoding": "utf-8", "bom": True}},
                      [path])
    assert out(result.files) == b"\xef\xbb\xbf" + "name,city\r\nJosé,Zürich\r\n".encode()
    bom = write(inbox, "bom.csv", b"\xef\xbb\xbfa,b\r\n1,2\r\n")
    kept = run_step({"type": "csv", "output": {"delimiter": "\t"}}, [bom])
    assert out(kept.files) == b"\xef\xbb\xbfa\tb\r\n1\t2\r\n"  # the input's BOM is written again
    dropped = run_step({"type": "csv", "output": {"bom": False}}, [bom])
    assert out(dropped.files) == b"a,b\r\n1,2\r\n"
    utf16 = write(inbox, "wide.csv", "a;b\r\n1;ä\r\n".encode("utf-16"))
    converted = run_step({"type": "csv", "input": {"encoding": "utf-16", "delimiter": ";"},
                          "output": {"encoding": "utf-8", "delimiter": ","}}, [utf16])
    assert out(converted.files) == "a,b\r\n1,ä\r\n".encode()


def test_unencodable_output_fails_or_is_replaced(run_step: RunStep, inbox: Path) -> None:
    path = write(inbox, "u.csv", "a\r\n€\r\n".encode())
    with pytest.raises(PermanentError, match="cannot be written in latin-1"):
        run_step({"type": "csv", "output": {"encoding": "latin-1"}}, [path])
    result = run_step({"type": "csv", "output": {"encoding": "latin-1", "errors": "replace"}}, [path])
    assert out(result.files) == b"a\r\n?\r\n"


def test_columns_select_rename_reorder(run_step: RunStep, inbox: Path) -> None:
    path = write(inbox, "c.csv", b"id,name,email,phone\r\n1,Ann,a@x,555\r\n2,Bob\r\n\r\n")
    result = run_step({"type": "csv", "columns": ["email", "id"], "rename": {"email": "mail"}}, [path])
    assert out(result.files) == b"mail,id\r\na@x,1\r\n,2\r\n\r\n"
    with pytest.raises(PermanentError, match=r"line 1: no column 'mobile' in the header \(it has: 'id', 'name'"):
        run_step({"type": "csv", "columns": ["mobile"]}, [path])


def test_strict_checks_the_column_count_with_the_line(run_step: RunStep, inbox: Path) -> None:
    path = write(inbox, "s.csv", b'id,name\r\n1,"multi\r\nline"\r\n2,Bob,extra\r\n')
    with pytest.raises(PermanentError, match=r"s\.csv: line 4: 3 fields where the header has 2"):
        run_step({"type": "csv", "strict": True}, [path])
    assert out(run_step({"type": "csv"}, [path]).files) == path.read_bytes()


def test_skip_blank_lines_and_quoting_all(run_step: RunStep, inbox: Path) -> None:
    path = write(inbox, "b.csv", b"a,b\n\n1,2\n\n")
    result = run_step({"type": "csv", "skip_blank_lines": True, "output": {"quoting": "all"}}, [path])
    assert out(result.files) == b'"a","b"\n"1","2"\n'


def test_the_slow_and_fast_paths_agree_on_a_larger_file(run_step: RunStep, inbox: Path) -> None:
    rows = [f'{i},"name, {i}","multi\nline {i}",plain {i},"q ""{i}"""\r\n' for i in range(20_000)]
    rows[777] = '777,bad"quote,x,y,z\r\n'  # a quote inside an unquoted field: the slow path takes that block
    path = write(inbox, "big.csv", ("id,name,notes,plain,quoted\r\n" + "".join(rows)).encode())
    config = {"type": "csv", "output": {"delimiter": ";"}, "replace": [{"pattern": r"\r?\n", "with": " "}]}
    fast = run_step(config, [path])
    slow = run_step({**config, "fast": False}, [path])
    assert out(fast.files) == out(slow.files)
    assert fast.outputs["rows"] == slow.outputs["rows"] == 20_001


@pytest.mark.parametrize(("config", "message"), [
    ({"output": {"delimiter": ";;"}}, "exactly one character"),
    ({"output": {"delimiter": "\n"}}, "cannot be a line break"),
    ({"input": {"encoding": "klingon"}}, "unknown encoding 'klingon'"),
    ({"input": {"lineterminator": "\n"}}, "set output.lineterminator"),
    ({"replace": [{"pattern": "(", "with": ""}]}, "not a valid regular expression"),
    ({"replace": [{"pattern": "a"}]}, "with"),
    ({"output": {"quoting": "sometimes"}}, "quoting"),
    ({"name": "{nope}.csv"}, "unknown template field"),
])
def test_config_errors(tmp_path: Path, config: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_step({"type": "csv", **config}, tmp_path)
