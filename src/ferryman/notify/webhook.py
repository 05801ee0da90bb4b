"""``webhook`` notifier: POST the failures (or a recovery) as JSON to a URL.

The body is ``{"event": "failed" | "recovered", "flow", "host", "count",
"failures": [{"flow", "item_id", "key", "origin", "step", "error",
"attempts", "at"}, …]}``.  A 5xx answer, a 429 or a network error is tried
again `retries` times; any other non-2xx answer is a `PermanentError`.
Header values may be secrets (``Authorization = { env = "HOOK_TOKEN" }``);
they never appear in messages, nor does the URL's query string (a token in
``?key=…`` is shown as ``?…``).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time
import urllib.error
import urllib.parse
from dataclasses import asdict
from typing import Any, Literal

from pydantic import Field, field_validator

from ferryman.errors import PermanentError, TransientError, unresolved
from ferryman.notify.base import Failure, Notifier, NotifierConfig
from ferryman.redact import redact, redact_url
from ferryman.secrets import Secret, mask
from ferryman.tls import client_context
from ferryman.units import Duration

log = logging.getLogger("ferryman.notify")


class WebhookNotifierConfig(NotifierConfig):
    """POST failures and recoveries as JSON."""

    type: Literal["webhook"]
    url: str = Field(description="http:// or https:// URL to POST to.")
    headers: dict[str, Secret] = Field(
        default_factory=dict, description="Extra request headers; values may be secrets ({ env = … })."
    )
    timeout: Duration = Field(10.0, description="Time limit of each request.")
    retries: int = Field(2, ge=0, le=10, description="Further tries after a 5xx answer or a network error.")
    retry_delay: Duration = Field(1.0, description="Wait before the first retry (doubled each time).")
    ca_file: str | None = Field(None, description="PEM file of the CA that signed the server's certificate.")
    verify: bool = Field(True, description="Check the server's certificate (turning this off is unsafe).")
    recovered: bool = Field(True, description="Also POST when a flow works again after failures.")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("the webhook url must start with http:// or https://")
        return value


class WebhookNotifier(Notifier[WebhookNotifierConfig]):
    Config = WebhookNotifierConfig

    def failed(self, failures: list[Failure]) -> None:
        if failures:
            self.post("failed", failures[0].flow, failures)

    def recovered(self, flow: str) -> None:
        if self.config.recovered:
            self.post("recovered", flow, [])

    def post(self, event: str, flow: str, failures: list[Failure]) -> None:
        """Send one event; raises `TransientError` / `PermanentError` when it could not be delivered."""
        body = json.dumps({
            "event": event, "flow": flow, "host": socket.gethostname(), "count": len(failures),
            "failures": [asdict(f) for f in failures],
        }).encode()
        secrets = [value.reveal() for value in self.config.headers.values()]
        headers = {"Content-Type": "application/json", "User-Agent": "ferryman"}
        headers.update(zip(self.config.headers, secrets, strict=True))
        delay = self.config.retry_delay
        for attempt in range(self.config.retries + 1):
            try:
                self._once(body, headers, secrets)
                return
            except TransientError as exc:
                if attempt == self.config.retries:
                    raise
                log.warning("notifier %s: %s; trying again in %gs", self.name, exc, delay)
                time.sleep(delay)
                delay *= 2

    def _once(self, body: bytes, headers: dict[str, str], secrets: list[str]) -> None:
        import urllib.request  # 19 ms of imports: paid only by a daemon that posts to a webhook

        url = self.config.url
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        context: ssl.SSLContext | None = None
        if url.startswith("https://"):
            context = client_context(self.config.ca_file, self.config.verify)
        where = f"webhook {mask(redact_url(url), secrets)}"
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout, context=context) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:
            answer_text = mask(redact(_snippet(exc)), secrets)
            if exc.code >= 500 or exc.code == 429:
                raise TransientError(f"{where} answered {exc.code} {answer_text}") from None
            raise PermanentError(f"{where} answered {exc.code} {answer_text}") from None
        except urllib.error.URLError as exc:
            reason: Any = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise PermanentError(
                    f"{where}: TLS certificate not trusted ({reason.verify_message}); set ca_file"
                ) from None
            if isinstance(reason, socket.gaierror):
                host = urllib.parse.urlsplit(url).hostname or "?"
                raise TransientError(f"{where}: {unresolved(host, reason)}") from None
            text = getattr(reason, "strerror", None) or str(reason)
            raise TransientError(f"{where}: {mask(redact(text), secrets)}") from None
        except (TimeoutError, OSError) as exc:
            raise TransientError(f"{where}: {exc.strerror or 'timed out'}") from None


def _snippet(exc: urllib.error.HTTPError) -> str:
    """The reason and the start of the answer's body, on one line."""
    try:
        text = exc.read(300).decode(errors="replace")
    except OSError:
        text = ""
    return " ".join(f"{exc.reason} {text}".split())[:200]
