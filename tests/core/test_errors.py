"""DNS failures in words (`ferryman.errors.unresolved`), found behind the wrappers of real libraries."""

from __future__ import annotations

import socket

import pytest
import urllib3

from ferryman.errors import describe, dns_failure, unresolved

HOST = "no-such-host.invalid"   # RFC 6761: never resolves


def resolve_error() -> socket.gaierror:
    with pytest.raises(socket.gaierror) as raised:
        socket.getaddrinfo(HOST, 443)
    return raised.value


def test_unresolved_names_the_host_and_the_reason() -> None:
    error = resolve_error()
    assert unresolved(HOST, error) == f'cannot resolve host "{HOST}" (DNS: {error.strerror})'
    assert str(error.errno) not in unresolved(HOST, error)


def test_describe_a_bare_dns_failure() -> None:
    error = resolve_error()
    assert describe(error) == f"cannot resolve a host name (DNS: {error.strerror})"


def test_dns_failure_is_found_behind_urllib3() -> None:
    """urllib3 (under botocore) wraps the gaierror in its own exception, then in MaxRetryError."""
    pool = urllib3.PoolManager()
    with pytest.raises(urllib3.exceptions.HTTPError) as raised:
        pool.request("GET", f"https://{HOST}/", retries=urllib3.Retry(total=0), timeout=5)
    found = dns_failure(raised.value)
    assert isinstance(found, socket.gaierror)
    assert dns_failure(ValueError("not a network problem")) is None
