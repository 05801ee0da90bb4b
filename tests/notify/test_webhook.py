"""The webhook notifier against a real local HTTP server (http.server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import TypeAdapter

from ferryman.config import AnyNotifier
from ferryman.errors import PermanentError, TransientError
from ferryman.notify import NOTIFIERS, Failure
from support import free_port


@dataclass
class Hook:
    url: str
    received: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    """Status codes to answer with, in order (then 204)."""


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            state.received.append((dict(self.headers), json.loads(self.rfile.read(length))))
            status = state.answers.pop(0) if state.answers else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ferryman"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def webhook(url: str, **config: Any) -> Any:
    model = TypeAdapter(AnyNotifier).validate_python({"type": "webhook", "url": url, "retry_delay": "10ms",
                                                      **config})
    return NOTIFIERS["webhook"]("hook", model)


def failure(n: int) -> Failure:
    return Failure(flow="people", item_id=f"it{n}", key=f"k{n}", origin=f"/in/{n}.csv", step="deliver",
                   error="disk full", attempts=3, at=1700000000.0)


def test_failures_are_posted_as_json(hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "Bearer tok-123456")
    webhook(hook.url, headers={"Authorization": {"env": "HOOK_TOKEN"}, "X-Team": "data"}).failed(
        [failure(1), failure(2)])
    [(headers, body)] = hook.received
    assert headers["Authorization"] == "Bearer tok-123456"
    assert headers["X-Team"] == "data"
    assert headers["Content-Type"] == "application/json"
    assert body["event"] == "failed" and body["flow"] == "people" and body["count"] == 2
    assert body["failures"][1] == {"flow": "people", "item_id": "it2", "key": "k2", "origin": "/in/2.csv",
                                   "step": "deliver", "error": "disk full", "attempts": 3, "at": 1700000000.0}


def test_recovered(hook: Hook) -> None:
    webhook(hook.url).recovered("people")
    assert hook.received[0][1]["event"] == "recovered"
    assert hook.received[0][1]["failures"] == []


def test_5xx_is_retried(hook: Hook) -> None:
    hook.answers = [503, 500]
    webhook(hook.url).failed([failure(1)])
    assert len(hook.received) == 3


def test_5xx_every_time_is_transient(hook: Hook) -> None:
    hook.answers = [502, 502, 502]
    with pytest.raises(TransientError, match="answered 502"):
        webhook(hook.url, retries=2).failed([failure(1)])
    assert len(hook.received) == 3


def test_4xx_is_permanent_at_once(hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "tok-abcdef")
    hook.answers = [401]
    with pytest.raises(PermanentError, match="answered 401") as caught:
        webhook(hook.url, headers={"Authorization": {"env": "HOOK_TOKEN"}}).failed([failure(1)])
    assert len(hook.received) == 1
    assert "tok-abcdef" not in str(caught.value)


def test_nobody_listening_is_transient() -> None:
    with pytest.raises(TransientError, match="refused"):
        webhook(f"http://127.0.0.1:{free_port()}/x", retries=1).failed([failure(1)])


def test_a_host_that_does_not_resolve_is_named() -> None:
    with pytest.raises(TransientError) as caught:
        webhook("https://no-such-host.invalid/hook", retries=1).failed([failure(1)])
    assert str(caught.value).startswith(
        'webhook https://no-such-host.invalid/hook: cannot resolve host "no-such-host.invalid" (DNS: ')


def test_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="must start with http"):
        webhook("ftp://example.com/x")


SIGNED = "https://exports.example.com/777.zip?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=deadbeef0123"


def test_a_signed_link_is_never_posted_and_the_hook_s_own_token_never_shown(hook: Hook) -> None:
    """A failure's texts are redacted when it is made, so no notifier can pass a signature on."""
    signed = Failure(flow="itrp", item_id="it1", key=f"k {SIGNED}", origin=f"mail with {SIGNED}",
                     step="download", error=f"{SIGNED}: HTTP 403 Forbidden", attempts=1, at=1700000000.0)
    webhook(hook.url).failed([signed])
    [(_, body)] = hook.received
    assert "deadbeef" not in json.dumps(body) and "AKIAEXAMPLE" not in json.dumps(body)
    assert body["failures"][0]["error"] == "https://exports.example.com/777.zip?…: HTTP 403 Forbidden"

    hook.answers = [404]
    with pytest.raises(PermanentError, match=r"/hooks/ferryman\?…") as caught:
        webhook(hook.url + "?key=hook-secret-123").failed([failure(1)])
    assert "hook-secret-123" not in str(caught.value)
