"""`redact`: what of a URL may be shown (scheme, host, port, path) and what never (user-info, query, fragment)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ferryman import logs
from ferryman.config import LogConfig
from ferryman.redact import redact, redact_data, redact_url

SIGNED = ("https://exports.example.com:8443/export/777.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256"
          "&X-Amz-Credential=AKIAEXAMPLE%2F20240131%2Feu-west-1%2Fs3%2Faws4_request"
          "&X-Amz-Signature=deadbeefcafe0123456789")


@pytest.mark.parametrize("url, shown", [
    (SIGNED, "https://exports.example.com:8443/export/777.zip?…"),
    ("https://user:pw@host/path", "https://…@host/path"),
    ("https://token@host", "https://…@host"),
    ("https://a:b@host:21/p?q=1#frag", "https://…@host:21/p?…#…"),
    ("https://host/p#access_token=x", "https://host/p#…"),
    ("https://host?sig=1", "https://host?…"),
    ("https://host/p?", "https://host/p?"),
    ("https://host/a@b/c", "https://host/a@b/c"),            # an @ in the path is no user-info
    ("https://[::1]:99/p?s=1", "https://[::1]:99/p?…"),
    ("https://[bad/p?s=1", "https://[bad/p?…"),              # malformed: still redacted, never refused
    ("sftp://partner/in/a.csv", "sftp://partner/in/a.csv"),  # nothing to hide: unchanged
    ("postgresql://ferry:pw@db/x", "postgresql://…@db/x"),
    ("/srv/in/a.csv", "/srv/in/a.csv"),
])
def test_what_a_url_shows(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(shown) == shown                         # twice changes nothing


@pytest.mark.parametrize("text, shown", [
    (f"{SIGNED}: HTTP 503 Service Unavailable", "https://exports.example.com:8443/export/777.zip?…: HTTP 503 "
                                                 "Service Unavailable"),
    (f"The export is ready: {SIGNED}.", "The export is ready: https://exports.example.com:8443/export/777.zip?…."),
    (f"({SIGNED}), and <https://h/p?t=1>", "(https://exports.example.com:8443/export/777.zip?…), and <https://h/p?…>"),
    (f"'{SIGNED}'", "'https://exports.example.com:8443/export/777.zip?…'"),
    ("a?b=c is no URL", "a?b=c is no URL"),
    ("", ""),
])
def test_urls_in_text(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_every_string_of_a_document() -> None:
    document = {"meta": {"url": SIGNED, "n": "1"}, "steps": [{"error": f"x {SIGNED}", "bytes": 3}], "ok": None}
    assert redact_data(document) == {
        "meta": {"url": "https://exports.example.com:8443/export/777.zip?…", "n": "1"},
        "steps": [{"error": "x https://exports.example.com:8443/export/777.zip?…", "bytes": 3}], "ok": None}


def test_log_lines_are_redacted_in_files_and_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("ferryman")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        logs.setup(LogConfig(files={"debug": "debug.log"}), tmp_path, verbose=1)
        logging.getLogger("ferryman.flow.itrp").info("taking %s from the mail", SIGNED)
        try:
            raise ValueError(f"cannot fetch {SIGNED}")
        except ValueError:
            logging.getLogger("ferryman").exception("failed")
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
    written = (tmp_path / "logs" / "debug.log").read_text()
    for text in (written, capsys.readouterr().err):
        assert "taking https://exports.example.com:8443/export/777.zip?… from the mail" in text
        assert "ValueError: cannot fetch https://exports.example.com:8443/export/777.zip?…" in text  # the traceback
        assert "deadbeef" not in text and "AKIAEXAMPLE" not in text
