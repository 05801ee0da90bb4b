"""The download step against a local HTTPS server: streaming, names, limits and failures."""
# ruff: noqa: F811 - pytest fixtures are imported by name and used as arguments

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ferryman.errors import PermanentError, TransientError, UnsafeInput
from servers.https import HttpsServer, https_server  # noqa: F401 - fixture
from steps.harness import RunStep


def config(server: HttpsServer, **extra: Any) -> dict[str, Any]:
    return {"type": "download", "ca_file": str(server.cert), **extra}


def test_downloads_the_url_in_meta(https_server: HttpsServer, run_step: RunStep, tmp_path: Path) -> None:
    data = os.urandom(3_000_000)
    url = https_server.add("20240131-people.zip", data)
    original = tmp_path / "mail.eml"
    original.write_bytes(b"x")

    result = run_step(config(https_server), [original], {"url": url + "?token=secret"})

    assert result.files is not None
    (path,) = result.files
    assert path.name == "20240131-people.zip"       # the query string is not part of the name
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == ["20240131-people.zip"]   # no .part left
    assert "secret" not in str(result.outputs)
    added = run_step(config(https_server, mode="add"), [original], {"url": url})
    assert added.files is not None and added.files[0] == original


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd", "passwd"), ("..", "download"), ("report.csv", "report.csv"),
])
def test_content_disposition_names_are_plain(https_server: HttpsServer, run_step: RunStep,
                                             name: str, expected: str) -> None:
    result = run_step(config(https_server), [], {"url": https_server.url(f"/named?name={name}")})
    assert result.files is not None
    assert [p.name for p in result.files] == [expected if expected != "download" else "named"]
    assert result.files[0].read_bytes() == b"named body"


@pytest.mark.parametrize("path, error, message", [
    ("/missing", PermanentError, "HTTP 404"),
    ("/error", TransientError, "HTTP 500"),
    ("/short", TransientError, "ended after 10 of 1000 bytes"),
])
def test_http_failures(https_server: HttpsServer, run_step: RunStep, path: str, error: type[Exception],
                       message: str) -> None:
    with pytest.raises(error, match=message):
        run_step(config(https_server), [], {"url": https_server.url(path)})


def test_a_hanging_server_times_out(https_server: HttpsServer, run_step: RunStep) -> None:
    with pytest.raises(TransientError, match="timed out"):
        run_step(config(https_server, io_timeout="300ms"), [], {"url": https_server.url("/hang")})


def test_redirects_are_followed_up_to_the_limit(https_server: HttpsServer, run_step: RunStep) -> None:
    https_server.add("r.csv", b"redirected")
    result = run_step(config(https_server, max_redirects=3), [], {"url": https_server.url("/redirect/3/r.csv")})
    assert result.files is not None and result.files[0].read_bytes() == b"redirected"
    with pytest.raises(PermanentError, match="more than 3 redirects"):
        run_step(config(https_server, max_redirects=3), [], {"url": https_server.url("/redirect/4/r.csv")})


def test_plain_http_is_refused_unless_allowed(https_server: HttpsServer, run_step: RunStep) -> None:
    https_server.add("h.csv", b"plain")
    url = https_server.http_url("/files/h.csv")
    with pytest.raises(UnsafeInput, match="allow_http"):
        run_step(config(https_server), [], {"url": url})
    # A redirect from HTTPS down to HTTP is refused the same way.
    with pytest.raises(UnsafeInput, match="only https"):
        run_step(config(https_server), [], {"url": https_server.url(f"/to?url={url}")})
    result = run_step(config(https_server, allow_http=True), [], {"url": url})
    assert result.files is not None and result.files[0].read_bytes() == b"plain"


def test_allowed_hosts(https_server: HttpsServer, run_step: RunStep) -> None:
    url = https_server.add("a.csv", b"a")
    with pytest.raises(UnsafeInput, match="not in allowed_hosts"):
        run_step(config(https_server, allowed_hosts=["*.itrp.com"]), [], {"url": url})
    result = run_step(config(https_server, allowed_hosts=["127.0.0.*"]), [], {"url": url})
    assert result.files is not None


def test_max_size_stops_a_huge_body(https_server: HttpsServer, run_step: RunStep) -> None:
    # Announced too large: refused before reading.
    with pytest.raises(PermanentError, match="more than max_size"):
        run_step(config(https_server, max_size="1MB"), [], {"url": https_server.url("/huge")})


def test_max_size_counts_the_bytes_read(https_server: HttpsServer, run_step: RunStep, tmp_path: Path) -> None:
    https_server.add("lie.csv", b"y" * 300_000)
    with pytest.raises(PermanentError, match="more than max_size"):
        run_step(config(https_server, max_size="100KB"), [], {"url": https_server.url("/files/lie.csv")})
    leftovers = [p for p in (tmp_path / "root").rglob("*") if p.is_file()]
    assert leftovers == []                      # the partial file is gone


def test_untrusted_certificate_and_missing_url(https_server: HttpsServer, run_step: RunStep) -> None:
    url = https_server.add("c.csv", b"c")
    with pytest.raises(PermanentError, match="not trusted"):
        run_step({"type": "download"}, [], {"url": url})
    with pytest.raises(PermanentError, match=r"meta\.url"):
        run_step(config(https_server), [], {})
