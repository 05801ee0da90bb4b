"""``email``: mail the item's files as attachments through an ``smtp`` connection.

Recipients come from the config or from templates over ``meta`` (the PMT
case: ``to = "{meta.to}"`` with the source's ``meta_from_name``).  Every
address is checked by `parse_address` — one address per value, no line
breaks — so a hostile file name cannot add headers or recipients.

Subject and body are Jinja2 templates, chosen by ``template`` and ``locale``
(both may be ``{meta.KEY}`` templates): inline under ``templates`` or as
files ``<key>.txt`` in ``template_dir``, where a file's first line is
``Subject: …`` followed by a blank line and the body.  Keys tried, in order:
``<template>.<locale>``, ``<template>.<language>``, ``<template>`` — or,
without ``template``: ``<locale>``, ``<language>``, ``default`` — each locale
then ``fallback_locale``.  Plain ``subject`` / ``body`` serve when nothing
matches.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ferryman import templates
from ferryman.connections import SmtpConnection
from ferryman.errors import PermanentError, UnsafeInput
from ferryman.item import Item
from ferryman.model import Model
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.transports.local import os_errors
from ferryman.transports.smtp import SmtpSender, parse_address
from ferryman.units import Size, format_size

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _jinja() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def check_jinja(text: str) -> str:
    """Raise `ValueError` when `text` is not a valid Jinja2 template (for config validation)."""
    from jinja2 import TemplateSyntaxError

    try:
        _jinja().parse(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"Jinja2 template error on line {exc.lineno}: {exc.message}") from None
    return text


class MailTemplate(Model):
    """A subject and a body, both Jinja2 templates."""

    subject: str = Field(description="Jinja2 template of the subject line.")
    body: str = Field(description="Jinja2 template of the plain-text body.")

    @field_validator("subject", "body")
    @classmethod
    def _valid(cls, value: str) -> str:
        return check_jinja(value)


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    body: str


class MailTemplates:
    """Finds a `MailTemplate` by name and locale among inline templates and a template folder."""

    def __init__(self, inline: Mapping[str, MailTemplate], folder: Path | None = None,
                 fallback_locale: str | None = None, default: MailTemplate | None = None) -> None:
        self.inline = inline
        self.folder = folder
        self.fallback_locale = fallback_locale
        self.default = default

    def keys(self, name: str | None, locale: str | None) -> list[str]:
        """The keys tried for `name` and `locale`, most specific first."""
        for value, what in ((name, "template"), (locale, "locale")):
            if value is not None and not _KEY.match(value):
                raise UnsafeInput(f"email {what} {value!r} is not a plain name (letters, digits, _ . -)")
        locales: list[str] = []
        for candidate in (locale, self.fallback_locale):
            if candidate:
                for option in (candidate, candidate.split("_")[0]):
                    if option not in locales:
                        locales.append(option)
        if name:
            return [f"{name}.{option}" for option in locales] + [name]
        return [*locales, "default"]

    def find(self, name: str | None, locale: str | None) -> MailTemplate:
        keys = self.keys(name, locale)
        for key in keys:
            if key in self.inline:
                return self.inline[key]
            if self.folder is not None and (self.folder / f"{key}.txt").is_file():
                return self._read(self.folder / f"{key}.txt")
        if self.default is not None:
            return self.default
        raise PermanentError(f"no email template found (looked for: {', '.join(keys)})")

    @staticmethod
    def _read(path: Path) -> MailTemplate:
        with os_errors("cannot read email template"):
            text = path.read_text(encoding="utf-8")
        first, _, body = text.partition("\n")
        if not first.lower().startswith("subject:"):
            raise PermanentError(f"{path}: the first line must be 'Subject: …', then a blank line, then the body")
        try:
            return MailTemplate(subject=first[len("subject:"):].strip(), body=body.removeprefix("\n"))
        except ValueError as exc:
            raise PermanentError(f"{path}: {exc}") from None

    @staticmethod
    def render(template: MailTemplate, values: Mapping[str, Any]) -> RenderedMail:
        """Render subject and body; a subject with a line break inside is refused."""
        from jinja2 import TemplateError

        env = _jinja()
        try:
            subject = env.from_string(template.subject).render(values).strip()
            body = env.from_string(template.body).render(values)
        except TemplateError as exc:
            raise PermanentError(f"email template: {exc}") from None
        if any(c in subject for c in "\r\n\x00"):
            raise UnsafeInput(f"email subject {subject[:60]!r} holds a line break; refused (header injection)")
        return RenderedMail(subject, body)

    @staticmethod
    def mentions(template: MailTemplate, variable: str) -> bool:
        """Whether the body template uses `variable`."""
        from jinja2 import meta

        return variable in meta.find_undeclared_variables(_jinja().parse(template.body))


class EmailConfig(StepConfig):
    """Send the item's files as attachments."""

    type: Literal["email"]
    connection: str = Field(description="Name of an smtp connection under [connections].")
    to: list[str] = Field(min_length=1, description="Recipients; each may be a template like '{meta.to}'.")
    cc: list[str] = Field(default_factory=list, description="Copy recipients (templates allowed).")
    bcc: list[str] = Field(default_factory=list, description="Blind-copy recipients (templates allowed).")
    from_: str | None = Field(None, alias="from", description="Sender address (default: the connection's).")
    subject: str | None = Field(None, description="Jinja2 subject when no template matches.")
    body: str | None = Field(None, description="Jinja2 body when no template matches.")
    templates: dict[str, MailTemplate] = Field(
        default_factory=dict, description="Inline templates by key: 'en_CA', 'bmgf.fr_CA', 'default' …"
    )
    template_dir: str | None = Field(
        None, description="Folder of '<key>.txt' templates: first line 'Subject: …', a blank line, the body."
    )
    template: str | None = Field(None, description="Template name, may be a template: '{meta.db}'.")
    locale: str | None = Field(None, description="Locale like 'fr_CA', may be a template: '{meta.lang}'.")
    fallback_locale: str | None = Field(None, description="Locale tried when the item's has no template.")
    include: list[str] | None = Field(None, description="Attach only files whose names match these globs.")
    attach: bool = Field(True, description="Attach the files (false: just send the message).")
    max_attachment_size: Size | None = Field(None, description="Largest file attached, e.g. '20MB'.")
    too_large: Literal["fail", "notice"] = Field(
        "fail", description="A file above max_attachment_size fails the item, or is left out with a notice "
        "in the body ('notice')."
    )

    @field_validator("to", "cc", "bcc", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("to", "cc", "bcc")
    @classmethod
    def _check_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            templates.check(entry)
        return value

    @field_validator("from_", "template", "locale")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        if value is not None:
            templates.check(value)
        return value

    @field_validator("subject", "body")
    @classmethod
    def _check_jinja(cls, value: str | None) -> str | None:
        return check_jinja(value) if value is not None else None

    @model_validator(mode="after")
    def _has_text(self) -> EmailConfig:
        if (self.subject is None) != (self.body is None):
            raise ValueError("give both subject and body (or use templates)")
        if self.subject is None and not self.templates and self.template_dir is None:
            raise ValueError("give subject and body, templates, or template_dir")
        return self


class EmailStep(Step[EmailConfig]):
    """Sends one message per item; the item keeps its files.

    Running it again after a crash sends the message again, with the same
    Message-ID (``<item>.<step>.ferryman@<sender domain>``), which lets mail
    systems drop the duplicate.
    """

    Config = EmailConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        conn = self.flow.connection(self.config.connection, "smtp")
        assert isinstance(conn, SmtpConnection)
        values = ctx.values(item.files[0] if item.files else None)
        sender = self._sender(conn, values)
        to = self._addresses(self.config.to, "to", values)
        cc = self._addresses(self.config.cc, "cc", values)
        bcc = self._addresses(self.config.bcc, "bcc", values)

        files = list(ctx.files(self.config.include)) if self.config.attach else []
        attach, too_large = self._select(files)
        chosen = self._template(values)
        context = self._context(item, ctx, attach, too_large)
        mail = MailTemplates.render(chosen, context)
        body = mail.body
        if too_large and not MailTemplates.mentions(chosen, "too_large"):
            body = body.rstrip("\n") + "\n\n" + "\n".join(
                f"The file {f['name']} ({f['size']}) was too large to attach (limit {f['limit']})."
                for f in too_large) + "\n"

        message = EmailMessage()
        message["From"] = sender
        message["To"] = to
        if cc:
            message["Cc"] = cc
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = f"<{item.id}.{ctx.index}.ferryman@{sender.domain}>"
        message.set_content(body)
        for path in attach:
            kind, encoding = mimetypes.guess_type(path.name)
            if kind is None or encoding is not None:
                kind = "application/octet-stream"
            maintype, subtype = kind.split("/", 1)
            with os_errors("cannot read attachment"):
                data = path.read_bytes()
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)

        recipients = [a.addr_spec for a in (*to, *cc, *bcc)]
        refused = SmtpSender(conn).send(message, recipients)
        if refused:
            self.flow.log.warning("%s: item %s: some recipients were refused: %s", self.flow.flow,
                                  item.id, refused)
        return StepResult(outputs={
            "to": [a.addr_spec for a in to], "cc": [a.addr_spec for a in cc], "bcc": len(bcc),
            "attached": [p.name for p in attach], "too_large": [f["name"] for f in too_large],
            "refused": refused,
        })

    def _sender(self, conn: SmtpConnection, values: Mapping[str, Any]) -> Address:
        raw = self.config.from_ or conn.from_ or (conn.user if conn.user and "@" in conn.user else None)
        if raw is None:
            raise PermanentError(
                f"email: no sender; set 'from' on the step or on connection {self.config.connection!r}")
        return parse_address(templates.render(raw, values), "from")

    @staticmethod
    def _addresses(entries: list[str], field: str, values: Mapping[str, Any]) -> tuple[Address, ...]:
        return tuple(parse_address(templates.render(entry, values), field) for entry in entries)

    def _select(self, files: list[Path]) -> tuple[list[Path], list[dict[str, str]]]:
        """Files to attach, and those above `max_attachment_size` (left out, or a failure)."""
        limit = self.config.max_attachment_size
        attach: list[Path] = []
        too_large: list[dict[str, str]] = []
        for path in files:
            with os_errors("cannot read attachment"):
                size = path.stat().st_size
            if limit is not None and size > limit:
                if self.config.too_large == "fail":
                    raise PermanentError(
                        f"email: {path.name} ({format_size(size)}) is larger than max_attachment_size "
                        f"({format_size(limit)})"
                    )
                too_large.append({"name": path.name, "size": format_size(size), "limit": format_size(limit)})
            else:
                attach.append(path)
        return attach, too_large

    def _template(self, values: Mapping[str, Any]) -> MailTemplate:
        cfg = self.config
        name = templates.render(cfg.template, values) if cfg.template else None
        locale = templates.render(cfg.locale, values) if cfg.locale else None
        default = MailTemplate(subject=cfg.subject, body=cfg.body) if cfg.subject and cfg.body else None
        folder = self.flow.resolve(cfg.template_dir) if cfg.template_dir else None
        return MailTemplates(cfg.templates, folder, cfg.fallback_locale, default).find(name, locale)

    def _context(self, item: Item, ctx: StepContext, attach: list[Path],
                 too_large: list[dict[str, str]]) -> dict[str, Any]:
        first = item.files[0] if item.files else None
        return {
            "meta": dict(item.meta), "flow": self.flow.flow, "item": item.id, "now": ctx.now,
            "files": [p.name for p in item.files], "attached": [p.name for p in attach],
            "too_large": too_large, "name": first.name if first else "",
            "stem": first.stem if first else "", "suffix": first.suffix if first else "",
        }
