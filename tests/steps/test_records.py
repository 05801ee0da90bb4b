"""decrypt_fields and append_csv on real files, a real key and a real SQLite journal: both
paddings, every per-field failure, plaintext kept out of logs and errors, headers, extra keys,
a torn append repaired, a finished one not repeated, a full disk, a folder that is not writable."""

from __future__ import annotations

import base64
import contextlib
import csv
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import TypeAdapter

from ferryman.config import AnyStep
from ferryman.errors import PermanentError, TransientError
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.journal.sqlite import SqliteJournal
from ferryman.steps import STEPS, StepContext, StepResult
from ferryman.steps.records.files import read, write
from ferryman.transports import TransportPool
from support import unavailable

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def encrypt(text: str, pad: str = "pkcs1v15", key: rsa.RSAPrivateKey = KEY) -> str:
    if pad == "pkcs1v15":
        scheme: padding.AsymmetricPadding = padding.PKCS1v15()
    else:
        algorithm: hashes.HashAlgorithm = hashes.SHA1() if pad == "oaep-sha1" else hashes.SHA256()
        scheme = padding.OAEP(mgf=padding.MGF1(algorithm), algorithm=algorithm, label=None)
    return base64.b64encode(key.public_key().encrypt(text.encode(), scheme)).decode()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SqliteJournal]:
    j = SqliteJournal(tmp_path / "journal.db")
    yield j
    j.close()


def for_another_key(text: str) -> str:
    """`text` encrypted for another key, one that KEY visibly fails on.  With PKCS#1 v1.5, OpenSSL's
    implicit rejection turns a wrong-key decryption into random bytes instead of an error; now and
    then those bytes are valid UTF-8 and nothing can tell them from a value (docs/steps/records.md
    says so).  The tests want the detectable case, every run: a ciphertext whose wrong-key result
    is not UTF-8."""
    for _ in range(200):
        cipher = encrypt(text, key=OTHER)
        try:
            KEY.decrypt(base64.b64decode(cipher), padding.PKCS1v15()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return cipher
    raise AssertionError("no ciphertext that the wrong key visibly fails on")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key.pem"
    path.write_bytes(KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"open sesame")))
    return path


class Runner:
    def __init__(self, tmp: Path, journal: SqliteJournal) -> None:
        self.tmp = tmp
        self.context = FlowContext(flow="pi", root=tmp / "root", config_dir=tmp, connections={},
                                   transports=TransportPool({}), journal=journal)
        self.count = 0

    def step(self, config: dict[str, Any]) -> Any:
        model = TypeAdapter(AnyStep).validate_python(config)
        return STEPS[config["type"]](model, self.context)

    def run(self, step: Any, files: list[Path], item_id: str = "item1",
            meta: dict[str, str] | None = None) -> tuple[StepResult, Item]:
        self.count += 1
        work = self.tmp / "root" / "work" / item_id / f"attempt{self.count}"
        item = Item(id=item_id, flow="pi", key=item_id, origin="test",
                    meta={"collection": "intake", "polled_at": "2026-12-03T10:00:00+00:00", **(meta or {})},
                    files=list(files), created_at=1.0)
        result = step.run(item, StepContext(flow=self.context, item=item, index=0, work_dir=work))
        return (result if result is not None else StepResult()), item


def records_file(folder: Path, records: list[dict[str, Any]], name: str = "batch.jsonl") -> Path:
    path = folder / name
    write(path, iter([(r["id"], r) for r in records]))
    return path


@pytest.mark.parametrize("pad", ["pkcs1v15", "oaep-sha1", "oaep-sha256"])
def test_fields_decrypt_with_each_padding(tmp_path: Path, journal: SqliteJournal, key_file: Path, pad: str) -> None:
    runner = Runner(tmp_path, journal)
    step = runner.step({"type": "decrypt_fields", "key": {"file": str(key_file)},
                        "passphrase": "open sesame", "padding": pad})
    source = records_file(tmp_path, [{"id": 1, "nameRSA": encrypt("Jänë", pad), "age": 3, "emptyRSA": None,
                                      "blankRSA": ""}])
    result, _ = runner.run(step, [source])
    assert result.files is not None
    [(value, record)] = list(read(result.files[0]))
    assert (value, record) == (1, {"id": 1, "nameRSA": "Jänë", "age": 3, "emptyRSA": None, "blankRSA": ""})
    assert result.files[0].stat().st_mode & 0o777 == 0o600  # plaintext: private to ferryman
    assert "Jänë" not in repr(result.outputs)


@pytest.mark.parametrize(("on_error", "bad_b64", "expect_cipher", "expect_b64"), [
    ("keep", "empty", "cipher", ""),  # what PIExporter did
    ("empty", None, "", ""),
    ("keep", None, "cipher", "%%%not base64%%%"),
])
def test_fields_that_fail_follow_on_error_and_are_logged_without_their_value(
        tmp_path: Path, journal: SqliteJournal, key_file: Path, caplog: pytest.LogCaptureFixture,
        on_error: str, bad_b64: str | None, expect_cipher: str, expect_b64: str) -> None:
    runner = Runner(tmp_path, journal)
    config = {"type": "decrypt_fields", "key": {"file": str(key_file)}, "passphrase": "open sesame",
              "on_error": on_error}
    if bad_b64:
        config["on_bad_base64"] = bad_b64
    step = runner.step(config)
    foreign = for_another_key("secret for someone else")
    source = records_file(tmp_path, [{"id": 7, "aRSA": foreign, "bRSA": "%%%not base64%%%",
                                      "okRSA": encrypt("fine")}])
    with caplog.at_level(logging.DEBUG):
        result, _ = runner.run(step, [source])
    assert result.files is not None
    [(_, record)] = list(read(result.files[0]))
    assert record["okRSA"] == "fine"
    assert record["aRSA"] == (foreign if expect_cipher == "cipher" else "")
    assert record["bRSA"] == expect_b64
    assert result.outputs["fields_failed"] == 2
    logged = caplog.text
    assert "record 7 field 'aRSA'" in logged and "record 7 field 'bRSA' is not base64" in logged
    assert foreign not in logged and "fine" not in logged.replace("field", "")
    assert "%%%not base64%%%" not in logged


def test_on_error_fail_fails_the_item_naming_the_field_not_the_value(tmp_path: Path, journal: SqliteJournal,
                                                                     key_file: Path) -> None:
    runner = Runner(tmp_path, journal)
    step = runner.step({"type": "decrypt_fields", "key": {"file": str(key_file)}, "passphrase": "open sesame"})
    foreign = for_another_key("other")
    source = records_file(tmp_path, [{"id": 9, "xRSA": foreign}])
    with pytest.raises(PermanentError, match="record 9 field 'xRSA' does not decrypt") as caught:
        runner.run(step, [source])
    assert foreign not in str(caught.value)


@pytest.mark.parametrize(("passphrase", "message"), [
    ("bad-phrase-123", "wrong passphrase"),
    (None, "is encrypted: set passphrase"),
])
def test_a_wrong_key_or_passphrase_is_a_clear_error(tmp_path: Path, journal: SqliteJournal, key_file: Path,
                                                    passphrase: str | None, message: str) -> None:
    runner = Runner(tmp_path, journal)
    config: dict[str, Any] = {"type": "decrypt_fields", "key": {"file": str(key_file)}}
    if passphrase:
        config["passphrase"] = passphrase
    step = runner.step(config)
    with pytest.raises(PermanentError, match=message) as caught:
        runner.run(step, [records_file(tmp_path, [{"id": 1, "xRSA": encrypt("a")}])])
    assert "BEGIN" not in str(caught.value) and "bad-phrase-123" not in str(caught.value)


def test_not_a_key_file(tmp_path: Path, journal: SqliteJournal) -> None:
    (tmp_path / "junk.pem").write_text("not a key")
    runner = Runner(tmp_path, journal)
    step = runner.step({"type": "decrypt_fields", "key": {"file": str(tmp_path / "junk.pem")}})
    with pytest.raises(PermanentError, match="cannot load the private key"):
        runner.run(step, [records_file(tmp_path, [{"id": 1}])])


def test_decryption_in_worker_processes_gives_the_same_records(tmp_path: Path, journal: SqliteJournal,
                                                               key_file: Path) -> None:
    runner = Runner(tmp_path, journal)
    step = runner.step({"type": "decrypt_fields", "key": {"file": str(key_file)}, "passphrase": "open sesame",
                        "workers": 2})
    records = [{"id": n, "vRSA": encrypt(f"value {n}")} for n in range(150)]
    try:
        result, _ = runner.run(step, [records_file(tmp_path, records)])
    finally:
        step.close()
    assert result.files is not None
    assert [r["vRSA"] for _, r in read(result.files[0])] == [f"value {n}" for n in range(150)]


# ---- append_csv ---------------------------------------------------------------------------------

def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_rows_are_appended_under_one_header_named_by_the_poll_date(tmp_path: Path, journal: SqliteJournal) -> None:
    runner = Runner(tmp_path, journal)
    step = runner.step({"type": "append_csv", "to": "out"})
    runner.run(step, [records_file(tmp_path, [{"id": 1, "b": "x", "a": None}, {"id": 2, "b": "y,z", "a": 5}])])
    runner.run(step, [records_file(tmp_path, [{"id": 3, "a": True}], "two.jsonl")], item_id="item2")
    path = tmp_path / "out" / "intake_Dec_03_2026.csv"
    assert rows(path) == [["a", "b", "id"], ["", "x", "1"], ["5", "y,z", "2"], ["True", "", "3"]]
    assert path.read_bytes().endswith(b"\r\n")  # the excel dialect


def test_columns_fix_the_header(tmp_path: Path, journal: SqliteJournal) -> None:
    runner = Runner(tmp_path, journal)
    step = runner.step({"type": "append_csv", "to": "out", "columns": ["id", "b", "a"], "dialect": "unix",
                        "name": "{meta.collection}.csv"})
    runner.run(step, [records_file(tmp_path, [{"id": 1, "a": "1", "b": "2"}])])
    assert (tmp_path / "out" / "intake.csv").read_text() == '"id","b","a"\n"1","2","1"\n'


def test_extra_keys_error_ignore_or_new_file(tmp_path: Path, journal: SqliteJournal) -> None:
    runner = Runner(tmp_path, journal)
    first = records_file(tmp_path, [{"id": 1, "a": "1"}])
    more = records_file(tmp_path, [{"id": 2, "a": "2", "new": "n"}, {"id": 3, "a": "3"}], "more.jsonl")
    strict = runner.step({"type": "append_csv", "to": "strict"})
    runner.run(strict, [first])
    with pytest.raises(PermanentError, match=r"record 2 has field.*new.*header lacks"):
        runner.run(strict, [more], item_id="item2")
    assert rows(tmp_path / "strict" / "intake_Dec_03_2026.csv") == [["a", "id"], ["1", "1"]]  # nothing written
    lax = runner.step({"type": "append_csv", "to": "lax", "extra": "ignore"})
    runner.run(lax, [first])
    runner.run(lax, [more], item_id="item2")
    assert rows(tmp_path / "lax" / "intake_Dec_03_2026.csv") == [["a", "id"], ["1", "1"], ["2", "2"], ["3", "3"]]
    split = runner.step({"type": "append_csv", "to": "split", "extra": "new_file"})
    runner.run(split, [first])
    runner.run(split, [more], item_id="item2")
    assert rows(tmp_path / "split" / "intake_Dec_03_2026.csv") == [["a", "id"], ["1", "1"]]
    assert rows(tmp_path / "split" / "intake_Dec_03_2026-1.csv") == [["a", "id", "new"], ["2", "2", "n"],
                                                                      ["3", "3", ""]]


def test_a_torn_append_is_cut_back_and_a_finished_one_is_not_repeated(tmp_path: Path,
                                                                       journal: SqliteJournal) -> None:
    runner = Runner(tmp_path, journal)
    step = runner.step({"type": "append_csv", "to": "out"})
    runner.run(step, [records_file(tmp_path, [{"id": 1, "a": "1"}])])
    path = tmp_path / "out" / "intake_Dec_03_2026.csv"
    good = path.read_bytes()
    second = records_file(tmp_path, [{"id": 2, "a": "2"}], "second.jsonl")
    # a crash in the middle of item2's append: its length journaled, half a row on disk
    journal.set_cursor("pi", f"csv:{path}", f'{{"item": "item2", "before": {len(good)}, "after": null}}')
    with open(path, "ab") as f:
        f.write(b"2,2")
    runner.run(step, [second], item_id="item2")
    assert rows(path) == [["a", "id"], ["1", "1"], ["2", "2"]]
    # a crash after item2's rows were fsynced but before the engine journaled the step: run again
    runner.run(step, [second], item_id="item2")
    assert rows(path) == [["a", "id"], ["1", "1"], ["2", "2"]]
    # another item's torn append is cut away too (that item writes its rows when it resumes)
    size = path.stat().st_size
    journal.set_cursor("pi", f"csv:{path}", f'{{"item": "item9", "before": {size}, "after": null}}')
    with open(path, "ab") as f:
        f.write(b"9,")
    runner.run(step, [records_file(tmp_path, [{"id": 3, "a": "3"}], "third.jsonl")], item_id="item3")
    assert rows(path) == [["a", "id"], ["1", "1"], ["2", "2"], ["3", "3"]]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real file system that fills up."""
    folder = tmp_path / "small"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_fails_cleanly_and_the_retry_appends_once(tmp_path: Path, journal: SqliteJournal,
                                                              small_disk: Path) -> None:
    runner = Runner(tmp_path, journal)
    step = runner.step({"type": "append_csv", "to": str(small_disk)})
    runner.run(step, [records_file(tmp_path, [{"id": 1, "a": "1"}])])
    path = small_disk / "intake_Dec_03_2026.csv"
    before = path.read_bytes()
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while True:
            os.write(fd, b"x" * 1024)
    os.close(fd)
    big = records_file(tmp_path, [{"id": n, "a": "y" * 500} for n in range(2, 40)], "big.jsonl")
    with pytest.raises(TransientError, match="no space left on device"):
        runner.run(step, [big], item_id="item2")
    assert path.read_bytes() == before  # no torn row
    filler.unlink()
    runner.run(step, [big], item_id="item2")
    assert len(rows(path)) == 1 + 1 + 38


def test_a_folder_that_is_not_writable(tmp_path: Path, journal: SqliteJournal, small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)  # read-only, even for root
    runner = Runner(tmp_path, journal)
    step = runner.step({"type": "append_csv", "to": str(small_disk)})
    with pytest.raises(PermanentError, match=r"cannot write .*: Read-only file system"):
        runner.run(step, [records_file(tmp_path, [{"id": 1, "a": "1"}])])


def test_a_csv_folder_that_is_a_file(tmp_path: Path, journal: SqliteJournal) -> None:
    runner = Runner(tmp_path, journal)
    (tmp_path / "out").write_text("in the way")
    step = runner.step({"type": "append_csv", "to": "out"})
    with pytest.raises(PermanentError, match="cannot create the CSV folder"):
        runner.run(step, [records_file(tmp_path, [{"id": 1, "a": "1"}])])
