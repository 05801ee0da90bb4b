"""`ferryman.transports.http`: what requests on an http connection carry and where they may go (the
requests themselves are tested against the real HTTPS server in tests/steps/test_download_auth.py)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import TypeAdapter

from ferryman.config import AnyConnection
from ferryman.connections import HttpConnection
from ferryman.errors import PermanentError, UnsafeInput
from ferryman.transports.http import credentials, resolve


def http(**keys: Any) -> HttpConnection:
    conn = TypeAdapter(AnyConnection).validate_python({"type": "http", **keys})
    assert isinstance(conn, HttpConnection)
    return conn


@pytest.mark.parametrize("base, url, expected", [
    ("https://api.example.com/v1", "exports/a.csv", "https://api.example.com/v1/exports/a.csv"),
    ("https://api.example.com/v1/", "/exports/a.csv", "https://api.example.com/v1/exports/a.csv"),
    ("https://api.example.com/v1/", "a.csv?month=2024-01", "https://api.example.com/v1/a.csv?month=2024-01"),
    ("https://api.example.com/v1/", "https://cdn.example.com/a.csv", "https://cdn.example.com/a.csv"),
])
def test_relative_urls_are_paths_below_base_url(base: str, url: str, expected: str) -> None:
    assert resolve(url, "api", http(base_url=base)) == expected


def test_urls_that_cannot_be_resolved() -> None:
    with pytest.raises(PermanentError, match="no connection gives a base_url"):
        resolve("a.csv", None, None)
    with pytest.raises(PermanentError, match="has no scheme"):
        resolve("//cdn.example.com/a.csv", "api", http(base_url="https://api.example.com/"))
    with pytest.raises(UnsafeInput, match="may not carry a user name or password") as raised:
        resolve("https://bob:hunter2@api.example.com/a.csv", "api", http())
    assert "hunter2" not in str(raised.value) and "bob" not in str(raised.value)


def test_credentials_reveal_auth_and_headers_and_list_what_to_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "pa55-w0rd")
    monkeypatch.setenv("KEY", "k-123456")
    creds = credentials("api", http(
        base_url="https://api.example.com:8443/v1", auth={"basic": {"user": "bob", "password": {"env": "PW"}}},
        headers={"X-Api-Key": {"env": "KEY"}, "Accept": "text/csv"}))
    token = base64.b64encode(b"bob:pa55-w0rd").decode()
    assert creds.headers == {"X-Api-Key": "k-123456", "Accept": "text/csv", "Authorization": f"Basic {token}"}
    assert set(creds.secrets) == {"pa55-w0rd", "k-123456", token}      # a literal header is no secret
    assert creds.for_url("https://api.example.com:8443/v2/x") == creds.headers
    for elsewhere in ("https://api.example.com/v1/x", "http://api.example.com:8443/v1/x", "https://cdn.example.com/"):
        assert creds.for_url(elsewhere) == {}


def test_without_base_url_the_first_url_fixes_where_credentials_go() -> None:
    creds = credentials("api", http(auth={"bearer": "tok"}))
    assert creds.for_url("https://anywhere.example.com/") == {"Authorization": "Bearer tok"}
    bound = creds.bound("https://files.example.com/a.csv")
    assert bound.for_url("https://FILES.example.com:443/b.csv") == {"Authorization": "Bearer tok"}
    assert bound.for_url("https://cdn.example.com/a.csv") == {}
