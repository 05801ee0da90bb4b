from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ferryman.errors import PermanentError
from ferryman.retry import RetryPolicy
from ferryman.secrets import Secret, parse_secret
from ferryman.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("10s", 10), ("5m", 300), ("1h", 3600),
                                                ("7d", 604800), (3, 3.0), ("2.5s", 2.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-1s", "5 parsecs", True, -1])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_sizes_and_formats() -> None:
    assert parse_size("10MB") == 10_000_000
    assert parse_size("2GiB") == 2 * 1024**3
    assert parse_size(5) == 5
    with pytest.raises(ValueError):
        parse_size("10 bananas")
    assert format_duration(300) == "5m" and format_duration(0.25) == "250ms"


def test_secret_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FM_SECRET", "s3cret")
    (tmp_path / "pw").write_text("from-file\n")
    assert parse_secret({"env": "FM_SECRET"}).reveal() == "s3cret"
    assert parse_secret({"file": str(tmp_path / "pw")}).reveal() == "from-file"
    assert parse_secret({"command": [sys.executable, "-c", "print('from-cmd')"]}).reveal() == "from-cmd"
    literal = parse_secret("hunter22")
    assert literal.literal and literal.reveal() == "hunter22"
    assert "hunter22" not in repr(literal) and "hunter22" not in str(literal)


def test_secret_errors_do_not_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FM_MISSING", raising=False)
    with pytest.raises(PermanentError, match="FM_MISSING is not set"):
        Secret("env", "FM_MISSING").reveal()
    with pytest.raises(PermanentError, match="cannot read"):
        Secret("file", str(tmp_path / "nope")).reveal()
    with pytest.raises(PermanentError, match="exited with 3"):
        Secret("command", [sys.executable, "-c", "print('leak'); raise SystemExit(3)"]).reveal()


def test_retry_policy() -> None:
    policy = RetryPolicy(attempts=4, delay=1, backoff=2, max_delay=3, same_error=True)
    assert [policy.wait(n) for n in (1, 2, 3)] == [1, 2, 3]
    assert policy.should_retry(1, "OSError", None)
    assert not policy.should_retry(2, "ValueError", "OSError")
    assert not policy.should_retry(4, "OSError", "OSError")
