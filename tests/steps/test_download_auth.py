"""The download step with an ``http`` connection, against the local HTTPS server: basic and bearer
auth, headers from secrets, the connection's CA, base_url, credentials kept to their own host, and
URLs with ``user:pw@`` refused."""
# ruff: noqa: F811 - pytest fixtures are imported by name and used as arguments

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from ferryman.config import AnyConnection, AnyStep
from ferryman.errors import FerrymanError, PermanentError, TransientError, UnsafeInput
from ferryman.flow import FlowContext
from ferryman.probe import check_connection
from ferryman.steps import STEPS
from ferryman.transports import TransportPool
from servers.https import HttpsServer, https_server  # noqa: F401 - fixture
from steps.harness import RunStep


@pytest.fixture
def server(https_server: HttpsServer) -> Iterator[HttpsServer]:
    """The session's server, with fresh logins for this test and no leftovers for the next."""
    https_server.logins["alice"] = "pw-" + secrets.token_hex(8)
    https_server.tokens.add("tok-" + secrets.token_hex(8))
    yield https_server
    https_server.logins.clear()
    https_server.tokens.clear()
    https_server.forbidden.clear()
    https_server.required.clear()


def token(server: HttpsServer) -> str:
    return next(iter(server.tokens))


def connection(server: HttpsServer, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "ca_file": str(server.cert), **extra}


def step_with(tmp_path: Path, connections: dict[str, dict[str, Any]], **config: Any) -> Any:
    """A download step built as `ferryman run` builds it, with these connections declared."""
    model = TypeAdapter(AnyStep).validate_python({"type": "download", **config})
    declared = {name: TypeAdapter(AnyConnection).validate_python(c) for name, c in connections.items()}
    flow = FlowContext(flow="t", root=tmp_path / "root", config_dir=tmp_path, connections=declared,
                       transports=TransportPool(declared), journal=None)  # type: ignore[arg-type]
    return STEPS["download"](model, flow)


def fetch(run_step: RunStep, step: Any, url: str) -> bytes:
    result = run_step({}, [], {"url": url}, step=step)
    assert result.files is not None
    (path,) = result.files
    return path.read_bytes()


def failure(run_step: RunStep, step: Any, url: str, error: type[Exception] = PermanentError) -> str:
    with pytest.raises(error) as raised:
        run_step({}, [], {"url": url}, step=step)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_basic_auth(server: HttpsServer, run_step: RunStep, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORT_PW", server.logins["alice"])
    url = server.add_private("basic.csv", b"a,b\n")
    step = step_with(tmp_path, {"api": connection(
        server, auth={"basic": {"user": "alice", "password": {"env": "EXPORT_PW"}}})}, connection="api")
    assert fetch(run_step, step, url) == b"a,b\n"
    sent = server.seen["/private/basic.csv"][-1]["authorization"]
    assert base64.b64decode(sent.removeprefix("Basic ")).decode() == f"alice:{server.logins['alice']}"


def test_bearer_token_from_a_file(server: HttpsServer, run_step: RunStep, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(token(server) + "\n")
    url = server.add_private("bearer.csv", b"bearer\n")
    step = step_with(tmp_path, {"api": connection(server, auth={"bearer": {"file": str(tmp_path / "token")}})},
                     connection="api")
    assert fetch(run_step, step, url) == b"bearer\n"
    assert server.seen["/private/bearer.csv"][-1]["authorization"] == f"Bearer {token(server)}"


def test_headers_may_be_secrets(server: HttpsServer, run_step: RunStep, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    key = "key-" + secrets.token_hex(8)
    server.required["keyed.csv"] = {"X-Api-Key": key}
    monkeypatch.setenv("API_KEY", key)
    url = server.add_private("keyed.csv", b"keyed\n")
    auth = {"bearer": token(server)}
    keyed = step_with(tmp_path, {"api": connection(
        server, auth=auth, headers={"X-Api-Key": {"env": "API_KEY"}, "Accept": "text/csv"})}, connection="api")
    assert fetch(run_step, keyed, url) == b"keyed\n"
    assert server.seen["/private/keyed.csv"][-1]["accept"] == "text/csv"
    monkeypatch.setenv("API_KEY", "wrong-" + key)
    message = failure(run_step, keyed, url)
    assert "HTTP 403 Forbidden: the credentials of connection 'api' do not give access" in message
    assert key not in message
    bare = step_with(tmp_path, {"api": connection(server, auth=auth)}, connection="api")
    assert "HTTP 403" in failure(run_step, bare, url)


def test_a_wrong_password_fails_in_one_line_without_the_secret(
        server: HttpsServer, run_step: RunStep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORT_PW", "not-the-password-42")
    url = server.add_private("wrong.csv", b"w")
    step = step_with(tmp_path, {"api": connection(
        server, auth={"basic": {"user": "alice", "password": {"env": "EXPORT_PW"}}})}, connection="api")
    message = failure(run_step, step, url)
    assert message == f"{url}: HTTP 401 Unauthorized: the server refused the credentials of connection 'api'"
    basic = base64.b64encode(b"alice:not-the-password-42").decode()
    assert "not-the-password-42" not in message and basic not in message


def test_a_login_without_a_connection_says_what_is_missing(server: HttpsServer, run_step: RunStep) -> None:
    url = server.add_private("anon.csv", b"a")
    with pytest.raises(PermanentError, match=r"HTTP 401 Unauthorized: the server wants credentials "
                                             r"\(give the step an http connection with auth\)"):
        run_step({"type": "download", "ca_file": str(server.cert)}, [], {"url": url})


def test_the_connection_gives_the_ca_file(server: HttpsServer, run_step: RunStep, tmp_path: Path) -> None:
    url = server.add("ca.csv", b"trusted")
    trusting = step_with(tmp_path, {"web": connection(server)}, connection="web")
    assert fetch(run_step, trusting, url) == b"trusted"
    plain = step_with(tmp_path, {"web": {"type": "http"}}, connection="web")
    assert "TLS certificate is not trusted" in failure(run_step, plain, url)


def test_relative_urls_are_paths_below_base_url(server: HttpsServer, run_step: RunStep, tmp_path: Path) -> None:
    server.add_private("rel.csv", b"relative")
    base = connection(server, base_url=server.url("/private/"), auth={"bearer": token(server)})
    for relative in ("rel.csv", "/rel.csv"):
        step = step_with(tmp_path, {"api": base}, connection="api", url=relative)
        result = run_step({}, [], {}, step=step)
        assert result.files is not None and result.files[0].read_bytes() == b"relative"
        assert result.outputs["downloaded"] == server.url("/private/rel.csv")
    unbased = step_with(tmp_path, {"api": connection(server)}, connection="api")
    assert failure(run_step, unbased, "exports/rel.csv") == \
        "'exports/rel.csv' is not an absolute URL and connection 'api' has no base_url"


def test_credentials_stay_on_their_host(server: HttpsServer, run_step: RunStep, tmp_path: Path) -> None:
    """A redirect to another host is followed without the connection's auth and headers; a first URL
    off the base_url's host is refused."""
    elsewhere = server.add_private("moved.csv", b"m", host="localhost")   # same server, another origin
    conn = connection(server, base_url=server.url("/"), auth={"bearer": token(server)},
                      headers={"X-Team": {"env": "HOME"}})
    step = step_with(tmp_path, {"api": conn}, connection="api")
    message = failure(run_step, step, server.url(f"/to?url={elsewhere}"))
    assert "https://localhost:" in message and "HTTP 401 Unauthorized" in message
    assert "the server wants credentials" in message       # none were sent there
    assert server.seen["/to"][-1]["authorization"] == f"Bearer {token(server)}"
    moved = server.seen["/private/moved.csv"][-1]
    assert "authorization" not in moved and "x-team" not in moved
    refused = failure(run_step, step, elsewhere)
    assert refused.endswith(f"not on the host of connection 'api' ({server.url('/')}), "
                            "the only one its auth and headers go to")


@pytest.mark.parametrize("userinfo", ["alice:hunter2-pw@", "alice@"])
def test_a_url_from_meta_with_user_and_password_is_refused(server: HttpsServer, run_step: RunStep,
                                                           userinfo: str) -> None:
    server.add_private("x.csv", b"x")
    url = server.url("/private/x.csv").replace("https://", f"https://{userinfo}")
    with pytest.raises(UnsafeInput) as raised:
        run_step({"type": "download", "ca_file": str(server.cert)}, [], {"url": url})
    message = str(raised.value)
    assert message.startswith(f"https://…@127.0.0.1:{server.port}/private/x.csv: a URL may not carry a user "
                              "name or password (user:pw@); declare them as the auth of an http connection")
    assert "connection" in message and "hunter2" not in message and "alice" not in message
    assert server.requests["/private/x.csv"] == 0


def test_a_redirect_to_a_url_with_a_password_is_refused(server: HttpsServer, run_step: RunStep) -> None:
    target = server.url("/files/x").replace("https://", "https://bob:pw-in-link@")
    with pytest.raises(UnsafeInput, match="may not carry a user name or password") as raised:
        run_step({"type": "download", "ca_file": str(server.cert)}, [], {"url": server.url(f"/to?url={target}")})
    assert "pw-in-link" not in str(raised.value)


@pytest.mark.parametrize("secret, message", [
    ({"env": "FERRYMAN_TEST_UNSET"}, "connection 'api' auth.bearer: secret: environment variable "
                                     "FERRYMAN_TEST_UNSET is not set"),
    ("line\r\nX-Evil: 1", "connection 'api' auth.bearer: the value holds a line break; a header value is one line"),
])
def test_a_secret_that_cannot_be_sent(server: HttpsServer, run_step: RunStep, tmp_path: Path,
                                      secret: Any, message: str) -> None:
    step = step_with(tmp_path, {"api": connection(server, auth={"bearer": secret})}, connection="api")
    assert failure(run_step, step, server.url("/files/x")) == message
    assert "X-Evil" not in message


def test_a_dns_failure_names_the_host(run_step: RunStep) -> None:
    with pytest.raises(TransientError) as raised:
        run_step({"type": "download"}, [], {"url": "https://no-such-host.invalid/x.csv"})
    assert str(raised.value).startswith(
        'https://no-such-host.invalid/x.csv: cannot resolve host "no-such-host.invalid" (DNS: ')


# ---- check --connect for http connections -----------------------------------------------------------

def probe(conn: dict[str, Any]) -> str:
    return check_connection("api", TypeAdapter(AnyConnection).validate_python(conn))


def probe_failure(conn: dict[str, Any]) -> str:
    with pytest.raises(FerrymanError) as raised:
        probe(conn)
    assert "\n" not in str(raised.value)
    return str(raised.value)


def test_probe_http(server: HttpsServer) -> None:
    server.add_private("index", b"hello")
    base = server.url("/private/index")
    basic = {"basic": {"user": "alice", "password": server.logins["alice"]}}
    assert probe(connection(server, base_url=base, auth=basic)) == \
        f"HTTP 200 OK from {base} (basic auth as alice)"
    assert probe(connection(server, base_url=base, auth={"bearer": token(server)})).endswith("(bearer token)")
    assert probe(connection(server)) == "no base_url, nothing to reach (the URLs come from the flows)"
    wrong = probe_failure(connection(server, base_url=base, auth={"basic": {"user": "alice", "password": "nope-99"}}))
    assert wrong == "http api: HTTP 401 Unauthorized: the server refused the connection's credentials"
    assert "nope-99" not in wrong
    assert "no auth is set" in probe_failure(connection(server, base_url=base))
    assert 'cannot resolve host "no-such-host.invalid" (DNS: ' in probe_failure(
        {"type": "http", "base_url": "https://no-such-host.invalid/api"})


# ---- what check says --------------------------------------------------------------------------------

FLOW = {"source": {"type": "schedule", "cron": "@daily"}}


@pytest.mark.parametrize("step, connections, message", [
    ({"url": "https://bob:pw-1@files.example.com/a.csv"}, {},
     "flows.f.steps[0].url: https://…@files.example.com/a.csv: a URL may not carry a user name or password "
     "(user:pw@); declare them as the auth of an http connection and set connection = \"NAME\" on the step"),
    ({"url": "exports/a.csv"}, {},
     "flows.f.steps[0]: url 'exports/a.csv' has no scheme: write https://…, or name an http connection whose "
     "base_url it is a path below"),
    ({"connection": "sf"}, {"sf": {"type": "sftp", "host": "h", "user": "u"}},
     "flows.f.steps[0].connection: connection 'sf' is of type 'sftp', not 'http'"),
    ({"connection": "apj"}, {"api": {"type": "http"}},
     "flows.f.steps[0].connection: no connection 'apj'; did you mean 'api'? (declare it under [connections.apj])"),
    ({}, {"api": {"type": "http", "base_url": "https://u:pw-2@api.example.com/"}},
     "connections.api.base_url: https://…@api.example.com/: a URL may not carry a user name or password "
     "(user:pw@); put them in this connection's auth = { basic = { user = …, password = … } }"),
    ({}, {"api": {"type": "http", "base_url": "api.example.com/v1"}},
     "connections.api.base_url: base_url 'api.example.com/v1' is not an http:// or https:// URL with a host"),
    ({}, {"api": {"type": "http", "auth": {}}},
     "connections.api.auth: auth takes one of basic = { user = \"…\", password = … } or bearer = …"),
    ({}, {"api": {"type": "http", "auth": {"bearer": "t", "basic": {"user": "u", "password": "p"}}}},
     "connections.api.auth: auth takes one of basic = { user = \"…\", password = … } or bearer = …"),
    ({}, {"api": {"type": "http", "auth": {"basic": {"user": "u"}}}},
     "connections.api.auth.basic.password: required key is missing"),
    ({}, {"api": {"type": "http", "auth": {"basic": ["u", "p"]}}},
     "connections.api.auth.basic: should be a table, like { key = value }"),
    ({}, {"api": {"type": "http", "headers": {"X Key": "v"}}},
     "connections.api.headers: 'X Key' is not a valid header name"),
    ({}, {"api": {"type": "http", "auth": {"bearer": "t"}, "headers": {"authorization": "x"}}},
     "connections.api: headers.Authorization and auth both set the Authorization header: keep one"),
])
def test_check_refuses(step: dict[str, Any], connections: dict[str, Any], message: str) -> None:
    from ferryman.config import validate
    from ferryman.errors import ConfigError

    raw = {"connections": connections, "flows": {"f": {**FLOW, "steps": [{"type": "download", **step}]}}}
    with pytest.raises(ConfigError) as raised:
        validate(raw)
    assert raised.value.problems == [message]
    assert "pw-1" not in message and "pw-2" not in message


def test_check_takes_literal_urls_and_relative_ones_with_a_connection() -> None:
    from ferryman.config import validate

    steps = [{"type": "download", "url": "https://files.example.com/a.csv"},
             {"type": "download", "url": "http://files.example.com/a.csv", "allow_http": True},
             {"type": "download", "url": "exports/{now:%Y}.csv", "connection": "api"}]
    config = validate({"connections": {"api": {"type": "http", "base_url": "https://api.example.com/v1",
                                               "auth": {"bearer": {"env": "TOKEN"}}}},
                       "flows": {"f": {**FLOW, "steps": steps}}})
    assert [s.url for s in config.flows["f"].steps] == [s["url"] for s in steps]  # type: ignore[attr-defined]
