"""The email step against a real SMTP server (aiosmtpd with STARTTLS + AUTH, and implicit TLS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from ferryman.config import AnyStep
from ferryman.errors import PermanentError, TransientError, UnsafeInput
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.steps import STEPS, StepContext, StepResult
from ferryman.transports import TransportPool
from servers import smtp as smtp_servers
from servers.smtp import PASSWORD, SmtpServer

smtp = smtp_servers.smtp
smtps = smtp_servers.smtps
_smtp_starttls = smtp_servers._smtp_starttls
_smtp_implicit = smtp_servers._smtp_implicit


def send(server: SmtpServer, tmp_path: Path, config: dict[str, Any], files: list[Path],
         meta: dict[str, str] | None = None, **conn: Any) -> StepResult:
    """Build the email step from a raw config table and run it once on one item."""
    model = TypeAdapter(AnyStep).validate_python({"type": "email", "connection": "mail", **config})
    flow = FlowContext(flow="t", root=tmp_path / "root", config_dir=tmp_path,
                       connections={"mail": server.connection(**conn)},
                       transports=TransportPool({}), journal=None)  # type: ignore[arg-type]
    step = STEPS["email"](model, flow)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    item = Item(id="item1", flow="t", key="k", origin="test", meta=dict(meta or {}), files=list(files))
    result = step.run(item, StepContext(flow=flow, item=item, index=2, work_dir=work))
    assert result is not None
    return result


def csv(tmp_path: Path, name: str = "report.csv", data: bytes = b"id;name\n1;Jane\n") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


SIMPLE = {"to": ["ops@example.com"], "subject": "Export {{ name }}", "body": "Hello,\n{{ files|join(', ') }}\n"}


def test_files_are_attached(smtp: SmtpServer, tmp_path: Path) -> None:
    a = csv(tmp_path)
    b = csv(tmp_path, "more.zip", b"PK\x03\x04 binary \x00\xff")
    result = send(smtp, tmp_path, {**SIMPLE, "cc": "boss@example.com", "bcc": ["audit@example.com"]}, [a, b])
    [got] = smtp.messages
    assert smtp.logins == ["mailer"]
    assert got.mail_from == "exports@example.com"
    assert sorted(got.rcpt_tos) == ["audit@example.com", "boss@example.com", "ops@example.com"]
    message = got.message
    assert message["Subject"] == "Export report.csv"
    assert message["To"] == "ops@example.com"
    assert message["Cc"] == "boss@example.com"
    assert message["Bcc"] is None
    assert message["Message-ID"] == "<item1.2.ferryman@example.com>"
    body = message.get_body(("plain",))
    assert body is not None and "report.csv, more.zip" in body.get_content()
    attachments = {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()}
    assert attachments == {"report.csv": a.read_bytes(), "more.zip": b.read_bytes()}
    assert result.outputs["attached"] == ["report.csv", "more.zip"]


def test_implicit_tls(smtps: SmtpServer, tmp_path: Path) -> None:
    send(smtps, tmp_path, SIMPLE, [csv(tmp_path)])
    assert len(smtps.messages) == 1
    assert smtps.messages[0].message.get_payload()[1].get_filename() == "report.csv"


LOCALES = {
    "en_CA": {"subject": "Your export {{ meta.db }}", "body": "Hello, here is your file.\n"},
    "fr_CA": {"subject": "Votre exportation {{ meta.db }}", "body": "Bonjour, voici votre fichier.\n"},
}


@pytest.mark.parametrize(("lang", "subject", "greeting"), [
    ("fr_CA", "Votre exportation cioc", "Bonjour"),
    ("en_CA", "Your export cioc", "Hello"),
    ("fr_FR", "Votre exportation cioc", "Bonjour"),  # no fr_FR template: the language finds "fr"
])
def test_template_per_locale(smtp: SmtpServer, tmp_path: Path, lang: str, subject: str,
                             greeting: str) -> None:
    templates = dict(LOCALES)
    templates["fr"] = LOCALES["fr_CA"]
    config = {"to": ["a@example.com"], "templates": templates, "locale": "{meta.lang}"}
    send(smtp, tmp_path, config, [csv(tmp_path)], meta={"lang": lang, "db": "cioc"})
    [got] = smtp.messages
    assert got.message["Subject"] == subject
    body = got.message.get_body(("plain",))
    assert body is not None and body.get_content().startswith(greeting)


def test_fallback_locale(smtp: SmtpServer, tmp_path: Path) -> None:
    config = {"to": ["a@example.com"], "templates": LOCALES, "locale": "{meta.lang}",
              "fallback_locale": "en_CA"}
    send(smtp, tmp_path, config, [csv(tmp_path)], meta={"lang": "de_DE", "db": "x"})
    assert smtp.messages[0].message["Subject"] == "Your export x"


def test_pmt_recipient_and_template_from_the_file_name(smtp: SmtpServer, tmp_path: Path) -> None:
    """PMT: `<email>_<db>.csv` is mailed to <email> with the message chosen by <db>."""
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "bmgf.txt").write_text("Subject: BMGF data request\n\nDear {{ meta.to }},\nyour BMGF data.\n")
    (folder / "oam.txt").write_text("Subject: OAM data request\n\nYour OAM data.\n")
    config = {"to": "{meta.to}", "template_dir": "tpl", "template": "{meta.db}"}
    attachment = csv(tmp_path, "jane.doe@example.com_bmgf.csv")
    send(smtp, tmp_path, config, [attachment], meta={"to": "jane.doe@example.com", "db": "bmgf"})
    [got] = smtp.messages
    assert got.rcpt_tos == ["jane.doe@example.com"]
    assert got.message["Subject"] == "BMGF data request"
    body = got.message.get_body(("plain",))
    assert body is not None and "Dear jane.doe@example.com," in body.get_content()
    assert [p.get_filename() for p in got.message.iter_attachments()] == ["jane.doe@example.com_bmgf.csv"]


def test_unknown_template_name_is_a_clear_error(smtp: SmtpServer, tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    config = {"to": "{meta.to}", "template_dir": "tpl", "template": "{meta.db}", "locale": "en_CA"}
    with pytest.raises(PermanentError, match=r"no email template found \(looked for: zzz.en_CA, zzz.en, zzz\)"):
        send(smtp, tmp_path, config, [csv(tmp_path)], meta={"to": "a@example.com", "db": "zzz"})
    assert smtp.messages == []


def test_template_name_from_meta_cannot_climb_out(smtp: SmtpServer, tmp_path: Path) -> None:
    config = {"to": "a@example.com", "template_dir": "tpl", "template": "{meta.db}"}
    with pytest.raises(UnsafeInput, match="not a plain name"):
        send(smtp, tmp_path, config, [csv(tmp_path)], meta={"db": "../../etc/passwd"})


def test_too_large_notice_sends_without_the_file(smtp: SmtpServer, tmp_path: Path) -> None:
    big = csv(tmp_path, "big.csv", b"x" * 5000)
    small = csv(tmp_path, "small.csv", b"y" * 10)
    config = {**SIMPLE, "max_attachment_size": "1KB", "too_large": "notice"}
    result = send(smtp, tmp_path, config, [big, small])
    [got] = smtp.messages
    assert [p.get_filename() for p in got.message.iter_attachments()] == ["small.csv"]
    body = got.message.get_body(("plain",))
    assert body is not None
    assert "The file big.csv (4.9 KiB) was too large to attach (limit 1000 B)." in body.get_content()
    assert result.outputs["too_large"] == ["big.csv"]


def test_too_large_notice_in_the_template(smtp: SmtpServer, tmp_path: Path) -> None:
    config = {"to": ["a@example.com"], "subject": "x",
              "body": "{% for f in too_large %}TOO LARGE: {{ f.name }}{% endfor %}",
              "max_attachment_size": 100, "too_large": "notice"}
    send(smtp, tmp_path, config, [csv(tmp_path, "big.csv", b"x" * 500)])
    body = smtp.messages[0].message.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "TOO LARGE: big.csv"


def test_too_large_fail(smtp: SmtpServer, tmp_path: Path) -> None:
    config = {**SIMPLE, "max_attachment_size": "1KB"}
    with pytest.raises(PermanentError, match=r"big.csv \(4.9 KiB\) is larger than max_attachment_size"):
        send(smtp, tmp_path, config, [csv(tmp_path, "big.csv", b"x" * 5000)])
    assert smtp.messages == []


@pytest.mark.parametrize("hostile", [
    "jane@example.com\r\nBcc: evil@example.com",
    "jane@example.com\nSubject: pwned",
    "jane@example.com, evil@example.com",
    "jane@example.com; evil@example.com",
])
def test_header_injection_through_meta_is_refused(smtp: SmtpServer, tmp_path: Path, hostile: str) -> None:
    with pytest.raises(UnsafeInput):
        send(smtp, tmp_path, {**SIMPLE, "to": "{meta.to}"}, [csv(tmp_path)], meta={"to": hostile})
    assert smtp.messages == []


def test_subject_injection_is_refused(smtp: SmtpServer, tmp_path: Path) -> None:
    config = {"to": ["a@example.com"], "subject": "Export {{ meta.title }}", "body": "b"}
    with pytest.raises(UnsafeInput, match="line break"):
        send(smtp, tmp_path, config, [csv(tmp_path)], meta={"title": "x\r\nBcc: evil@example.com"})
    assert smtp.messages == []


@pytest.mark.parametrize("bad", ["not-an-address", "jane@", "@example.com", "jane doe@example.com"])
def test_invalid_address_is_permanent(smtp: SmtpServer, tmp_path: Path, bad: str) -> None:
    with pytest.raises(PermanentError, match="is not a mail address"):
        send(smtp, tmp_path, {**SIMPLE, "to": "{meta.to}"}, [csv(tmp_path)], meta={"to": bad})


def test_wrong_password_is_permanent_and_not_shown(smtp: SmtpServer, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="login as 'mailer' refused: 535") as caught:
        send(smtp, tmp_path, SIMPLE, [csv(tmp_path)], password="Wrong-Password-123")
    assert "Wrong-Password-123" not in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert smtp.messages == []


def test_untrusted_certificate_is_permanent(smtp: SmtpServer, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="TLS certificate not trusted"):
        send(smtp, tmp_path, SIMPLE, [csv(tmp_path)], ca_file=None)


def test_recipient_refused_5xx_is_permanent(smtp: SmtpServer, tmp_path: Path) -> None:
    smtp.refuse_rcpt["ops@example.com"] = "550 5.1.1 no such user"
    with pytest.raises(PermanentError, match=r"recipients refused: ops@example.com \(550"):
        send(smtp, tmp_path, SIMPLE, [csv(tmp_path)])


def test_recipient_refused_4xx_is_transient(smtp: SmtpServer, tmp_path: Path) -> None:
    smtp.refuse_rcpt["ops@example.com"] = "450 4.2.1 mailbox busy, try later"
    with pytest.raises(TransientError, match="450"):
        send(smtp, tmp_path, SIMPLE, [csv(tmp_path)])


def test_one_refused_recipient_among_several_is_reported(smtp: SmtpServer, tmp_path: Path) -> None:
    smtp.refuse_rcpt["gone@example.com"] = "550 5.1.1 no such user"
    result = send(smtp, tmp_path, {**SIMPLE, "cc": ["gone@example.com"]}, [csv(tmp_path)])
    assert smtp.messages[0].rcpt_tos == ["ops@example.com"]
    assert list(result.outputs["refused"]) == ["gone@example.com"]


def test_data_refused_4xx_is_transient_and_5xx_permanent(smtp: SmtpServer, tmp_path: Path) -> None:
    smtp.refuse_data = "451 4.3.0 temporary failure"
    with pytest.raises(TransientError, match="451"):
        send(smtp, tmp_path, SIMPLE, [csv(tmp_path)])
    smtp.refuse_data = "552 5.3.4 message too big"
    with pytest.raises(PermanentError, match="552"):
        send(smtp, tmp_path, SIMPLE, [csv(tmp_path)])


def test_no_server_is_transient(smtp: SmtpServer, tmp_path: Path) -> None:
    from support import free_port

    with pytest.raises(TransientError, match="connect"):
        send(smtp, tmp_path, SIMPLE, [csv(tmp_path)], port=free_port())


@pytest.mark.parametrize(("change", "message"), [
    ({"subject": "x", "body": None}, "give both subject and body"),
    ({"subject": None, "body": None}, "give subject and body, templates, or template_dir"),
    ({"body": "{% if %}"}, "Jinja2 template error"),
    ({"to": "{meta.to"}, "template"),
    ({"to": []}, "at least 1"),
])
def test_config_errors(change: dict[str, Any], message: str) -> None:
    raw = {"type": "email", "connection": "mail", **SIMPLE, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(AnyStep).validate_python(raw)
