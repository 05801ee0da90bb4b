"""Downloads through an ``http`` connection, end to end with the real `ferryman` command against the
local HTTPS server: basic auth, a bearer token, headers from secrets, the connection's ca_file, a
wrong password (401, one line), ``user:pw@`` refused at check and at run time — and no secret in
the output, the log, ``history --json``, ``show`` or the journal file."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.https import HttpsServer
from support import ferryman

CONFIG = """
[ferryman]
root = "state"

[ferryman.log]
files = {{ debug = "debug.log" }}

[connections.exports]
type = "http"
base_url = "{base}"
ca_file = "{cert}"
auth = {{ basic = {{ user = "alice", password = {{ env = "EXPORT_PW" }} }} }}

[connections.api]
type = "http"
ca_file = "{cert}"
auth = {{ bearer = {{ file = "token.txt" }} }}
headers = {{ X-Api-Key = {{ env = "API_KEY" }}, Accept = "text/csv" }}

[flows.basic]
retry = {{ attempts = 1 }}

[flows.basic.source]
type = "schedule"
cron = "@daily"

[[flows.basic.steps]]
type = "download"
connection = "exports"
url = "people.csv"

[[flows.basic.steps]]
type = "deliver"
to = "out/basic"

[flows.bearer]
retry = {{ attempts = 1 }}

[flows.bearer.source]
type = "schedule"
cron = "@daily"

[[flows.bearer.steps]]
type = "download"
connection = "api"
url = "{keyed}"

[[flows.bearer.steps]]
type = "deliver"
to = "out/bearer"

[flows.links]
retry = {{ attempts = 1 }}

[flows.links.source]
type = "schedule"
cron = "@daily"
for_each = {{ file = "links.txt" }}

[[flows.links.steps]]
type = "download"
url = "{{meta.each}}"
ca_file = "{cert}"

[[flows.links.steps]]
type = "deliver"
to = "out/links"
"""


@pytest.fixture
def setup(https_server: HttpsServer, tmp_path: Path) -> Iterator[tuple[HttpsServer, Path, dict[str, str]]]:
    """The config, the server's logins and the secrets (in the environment and token.txt)."""
    server = https_server
    env = {"EXPORT_PW": "pw-" + secrets.token_hex(8), "API_KEY": "key-" + secrets.token_hex(8)}
    bearer = "tok-" + secrets.token_hex(8)
    server.logins["alice"] = env["EXPORT_PW"]
    server.tokens.add(bearer)
    server.required["rates.csv"] = {"X-Api-Key": env["API_KEY"]}
    server.add_private("people.csv", b"id,name\n1,Ann\n")
    keyed = server.add_private("rates.csv", b"code,rate\nCAD,1.0\n")
    (tmp_path / "token.txt").write_text(bearer + "\n")
    (tmp_path / "links.txt").write_text(server.url("/private/people.csv").replace("https://", "https://alice:"
                                                                                  + env["EXPORT_PW"] + "@") + "\n")
    (tmp_path / "ferryman.toml").write_text(CONFIG.format(
        base=server.url("/private/"), cert=server.cert, keyed=keyed))
    yield server, tmp_path, {**env, "BEARER": bearer}
    server.logins.clear()
    server.tokens.clear()
    server.required.clear()


def run_once(folder: Path, env: dict[str, str], flow: str) -> tuple[int, str]:
    done = ferryman("run", "--once", "--now", "-v", "--flow", flow, cwd=folder, env=env)
    return done.returncode, done.stdout + done.stderr


def everything_shown(folder: Path, env: dict[str, str]) -> str:
    """What ferryman shows or keeps about the items: history, status, show of each, the logs, the journal."""
    history = ferryman("history", "--json", "--limit", "100", cwd=folder, env=env, check=True).stdout
    shown = [history] + [ferryman("status", *json_flag, cwd=folder, env=env).stdout for json_flag in ([], ["--json"])]
    for item in json.loads(history):
        shown.append(ferryman("show", item["id"], cwd=folder, env=env, check=True).stdout)
        shown.append(ferryman("show", item["id"], "--json", cwd=folder, env=env, check=True).stdout)
    logs = [p for p in (folder / "state" / "logs").rglob("*") if p.is_file()]
    journal = [p for p in (folder / "state").glob("journal*") if p.is_file()]
    assert logs and journal
    shown += [p.read_text(errors="replace") for p in logs]
    shown += [p.read_bytes().decode("latin-1") for p in journal]     # the SQLite file itself, WAL too
    text = "\n".join(shown)
    assert "download" in history and all(p.stat().st_size for p in journal)   # something was kept
    return text


def assert_no_secret(text: str, env: dict[str, str], *more: str) -> None:
    for value in [*env.values(), *more]:
        assert value not in text


def test_basic_bearer_and_headers_deliver_and_keep_their_secrets(
        setup: tuple[HttpsServer, Path, dict[str, str]]) -> None:
    server, folder, secret = setup
    env = {k: v for k, v in secret.items() if k != "BEARER"}
    check = ferryman("check", cwd=folder, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    code, said = run_once(folder, env, "basic")
    assert code == 0, said
    assert (folder / "out" / "basic" / "people.csv").read_bytes() == b"id,name\n1,Ann\n"
    code, said_too = run_once(folder, env, "bearer")
    assert code == 0, said_too
    assert (folder / "out" / "bearer" / "rates.csv").read_bytes() == b"code,rate\nCAD,1.0\n"
    assert server.seen["/private/rates.csv"][-1]["accept"] == "text/csv"
    assert_no_secret(said + said_too + everything_shown(folder, env), secret)


def test_a_wrong_password_fails_the_item_in_one_line_without_the_secret(
        setup: tuple[HttpsServer, Path, dict[str, str]]) -> None:
    server, folder, secret = setup
    wrong = "wrong-" + secrets.token_hex(8)
    env = {"EXPORT_PW": wrong, "API_KEY": secret["API_KEY"]}
    code, said = run_once(folder, env, "basic")
    assert code == 1, said
    url = server.url("/private/people.csv")
    expected = f"{url}: HTTP 401 Unauthorized: the server refused the credentials of connection 'exports'"
    assert expected in said
    (failed,) = [line for line in said.splitlines() if line.startswith("failed")]
    assert failed.startswith("failed   basic: run by hand at ") and failed.endswith(f": {expected}")
    history = json.loads(ferryman("history", "--json", cwd=folder, env=env, check=True).stdout)
    assert [(i["state"], i["error"]) for i in history] == [("failed", expected)]
    assert not (folder / "out").exists()
    assert_no_secret(said + everything_shown(folder, env), secret, wrong)


def test_a_wrong_api_key_is_forbidden(setup: tuple[HttpsServer, Path, dict[str, str]]) -> None:
    _, folder, secret = setup
    env = {"EXPORT_PW": secret["EXPORT_PW"], "API_KEY": "other-" + secrets.token_hex(8)}
    code, said = run_once(folder, env, "bearer")
    assert code == 1, said
    assert "HTTP 403 Forbidden: the credentials of connection 'api' do not give access" in said
    assert_no_secret(said + everything_shown(folder, env), secret, env["API_KEY"])


def test_a_link_with_user_and_password_is_refused_at_run_time(
        setup: tuple[HttpsServer, Path, dict[str, str]]) -> None:
    server, folder, secret = setup
    env = {k: v for k, v in secret.items() if k != "BEARER"}
    before = server.requests["/private/people.csv"]
    code, said = run_once(folder, env, "links")
    assert code == 1, said
    assert (f"https://…@127.0.0.1:{server.port}/private/people.csv: a URL may not carry a user name or "
            "password (user:pw@); declare them as the auth of an http connection") in said
    assert server.requests["/private/people.csv"] == before     # nothing was sent
    assert not (folder / "out").exists()
    history = ferryman("history", "--json", cwd=folder, env=env, check=True).stdout
    show = ferryman("show", json.loads(history)[0]["id"], cwd=folder, env=env, check=True).stdout
    assert secret["EXPORT_PW"] not in said + history + show


def test_check_refuses_a_literal_url_with_user_and_password(tmp_path: Path) -> None:
    (tmp_path / "ferryman.toml").write_text("""
[flows.f.source]
type = "schedule"
cron = "@daily"

[[flows.f.steps]]
type = "download"
url = "https://alice:s3cr3t-pw@files.example.com/export.zip"
""")
    for command in (["check"], ["run", "--once"]):
        done = ferryman(*command, cwd=tmp_path)
        said = done.stdout + done.stderr
        assert done.returncode == 2, said
        assert ("flows.f.steps[0].url: https://…@files.example.com/export.zip: a URL may not carry a user "
                "name or password (user:pw@); declare them as the auth of an http connection and set "
                'connection = "NAME" on the step') in said
        assert "s3cr3t-pw" not in said
