"""``email`` notifier: a mail per failed item, a digest for several, a notice when a flow recovers.

Messages come from Jinja2 templates keyed ``failed``, ``digest`` and
``recovered`` (optionally per locale: ``failed.fr_CA``), inline under
``templates`` or as ``<key>.txt`` files in ``template_dir`` (first line
``Subject: …``); built-in English and French texts serve otherwise.  The
templates see ``flow``, ``failures`` (each with ``item_id``, ``key``,
``origin``, ``step``, ``error``, ``attempts``, ``at``), ``failure`` (the
first), ``count`` and ``host``.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import asdict
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ferryman.connections import SmtpConnection
from ferryman.errors import PermanentError, TransientError
from ferryman.notify.base import Failure, Notifier, NotifierConfig
from ferryman.steps.email import MailTemplate, MailTemplates
from ferryman.transports.smtp import SmtpSender, parse_address

log = logging.getLogger("ferryman.notify")

_LIST = ("{% for f in failures %}- {{ f.origin or f.key }}: step {{ f.step }}, {{ f.attempts }} attempt(s): "
         "{{ f.error }} (item {{ f.item_id }})\n{% endfor %}")


def _built_in(subject: str, body: str) -> MailTemplate:
    # Not validated here: checking the syntax would import Jinja2 into every `check` and `status`
    # of a config with an email notifier.  tests/notify/test_email.py checks these templates.
    return MailTemplate.model_construct(subject=subject, body=body)


BUILT_IN: dict[str, MailTemplate] = {
    "failed.en": _built_in(
        subject="[ferryman] {{ flow }}: {{ failure.origin or failure.key }} failed",
        body="Flow {{ flow }} on {{ host }} gave up on an item.\n\n" + _LIST
        + "\nThe original was kept. After fixing the cause: ferryman retry {{ failure.item_id }}\n"),
    "digest.en": _built_in(
        subject="[ferryman] {{ flow }}: {{ count }} items failed",
        body="Flow {{ flow }} on {{ host }} gave up on {{ count }} items.\n\n" + _LIST
        + "\nThe originals were kept. After fixing the cause: ferryman retry --flow {{ flow }} --failed\n"),
    "recovered.en": _built_in(
        subject="[ferryman] {{ flow }}: working again",
        body="Flow {{ flow }} on {{ host }} processed an item successfully after earlier failures.\n"),
    "failed.fr": _built_in(
        subject="[ferryman] {{ flow }} : échec de {{ failure.origin or failure.key }}",
        body="Le flux {{ flow }} sur {{ host }} a abandonné un élément.\n\n" + _LIST
        + "\nL'original est conservé. Une fois la cause corrigée : ferryman retry {{ failure.item_id }}\n"),
    "digest.fr": _built_in(
        subject="[ferryman] {{ flow }} : {{ count }} éléments en échec",
        body="Le flux {{ flow }} sur {{ host }} a abandonné {{ count }} éléments.\n\n" + _LIST
        + "\nLes originaux sont conservés. Une fois la cause corrigée : "
          "ferryman retry --flow {{ flow }} --failed\n"),
    "recovered.fr": _built_in(
        subject="[ferryman] {{ flow }} : fonctionne de nouveau",
        body="Le flux {{ flow }} sur {{ host }} a traité un élément avec succès après des échecs.\n"),
}


class EmailNotifierConfig(NotifierConfig):
    """Mail failures (one per item, or a digest) and recoveries through an smtp connection."""

    type: Literal["email"]
    connection: str = Field(description="Name of an smtp connection under [connections].")
    to: list[str] = Field(min_length=1, description="Recipients.")
    cc: list[str] = Field(default_factory=list, description="Copy recipients.")
    from_: str | None = Field(None, alias="from", description="Sender address (default: the connection's).")
    locale: str = Field("en", description="Locale of the messages: 'en', 'fr', 'fr_CA' …")
    templates: dict[str, MailTemplate] = Field(
        default_factory=dict, description="Templates by key: 'failed', 'digest', 'recovered', 'failed.fr_CA' …"
    )
    template_dir: str | None = Field(None, description="Folder of '<key>.txt' templates (first line 'Subject: …').")
    recovered: bool = Field(True, description="Also mail when a flow works again after failures.")

    @field_validator("to", "cc", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                parse_address(entry, "to")
            except PermanentError as exc:
                raise ValueError(str(exc)) from None
        return value


class EmailNotifier(Notifier[EmailNotifierConfig]):
    """Sends through the named smtp connection; a transient failure is tried again twice."""

    Config = EmailNotifierConfig
    retry_delays: tuple[float, ...] = (2.0, 10.0)

    def failed(self, failures: list[Failure]) -> None:
        if not failures:
            return
        kind = "failed" if len(failures) == 1 else "digest"
        self._send(kind, failures[0].flow, failures)

    def recovered(self, flow: str) -> None:
        if self.config.recovered:
            self._send("recovered", flow, [])

    def _send(self, kind: str, flow: str, failures: list[Failure]) -> None:
        conn = self.connections.get(self.config.connection)
        if not isinstance(conn, SmtpConnection):
            raise PermanentError(f"notifier {self.name}: no smtp connection named {self.config.connection!r}")
        items = [asdict(f) for f in failures]
        for entry in items:
            entry["at"] = datetime.fromtimestamp(float(entry["at"])).isoformat(timespec="seconds")
        values = {"flow": flow, "failures": items, "failure": items[0] if items else {},
                  "count": len(items), "host": socket.gethostname(), "now": datetime.now()}
        mail = MailTemplates.render(self._template(kind), values)
        sender = parse_address(self.config.from_ or conn.from_ or conn.user or "", "from")
        message = EmailMessage()
        message["From"] = sender
        message["To"] = tuple(parse_address(a, "to") for a in self.config.to)
        if self.config.cc:
            message["Cc"] = tuple(parse_address(a, "cc") for a in self.config.cc)
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid("ferryman", sender.domain)
        message.set_content(mail.body)
        recipients = [parse_address(a).addr_spec for a in (*self.config.to, *self.config.cc)]
        sender_ = SmtpSender(conn)
        for delay in (*self.retry_delays, None):
            try:
                sender_.send(message, recipients)
                return
            except TransientError as exc:
                if delay is None:
                    raise
                log.warning("notifier %s: %s; trying again in %gs", self.name, exc, delay)
                time.sleep(delay)

    def _template(self, kind: str) -> MailTemplate:
        folder = Path(self.config.template_dir).expanduser() if self.config.template_dir else None
        custom = MailTemplates(self.config.templates, folder)
        keys = custom.keys(kind, self.config.locale)
        for key in keys:
            if key in self.config.templates or (folder is not None and (folder / f"{key}.txt").is_file()):
                return custom.find(kind, self.config.locale)
        language = self.config.locale.split("_")[0]
        return BUILT_IN.get(f"{kind}.{language}", BUILT_IN[f"{kind}.en"])
