"""The email notifier against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from ferryman.config import AnyNotifier
from ferryman.errors import PermanentError, TransientError
from ferryman.notify import NOTIFIERS, Failure
from ferryman.notify.email import EmailNotifier
from servers import smtp as smtp_servers
from servers.smtp import PASSWORD, SmtpServer

smtp = smtp_servers.smtp
_smtp_starttls = smtp_servers._smtp_starttls


def notifier(server: SmtpServer, **config: object) -> EmailNotifier:
    raw = {"type": "email", "connection": "mail", "to": ["ops@example.com"], **config}
    model = TypeAdapter(AnyNotifier).validate_python(raw)
    built = NOTIFIERS["email"]("ops", model, {"mail": server.connection()})
    assert isinstance(built, EmailNotifier)
    built.retry_delays = (0.01,)
    return built


def failure(n: int = 1, error: str = "sftp partner:22: connection refused") -> Failure:
    return Failure(flow="people", item_id=f"it{n}", key=f"k{n}", origin=f"/srv/in/export{n}.csv",
                   step="deliver", error=error, attempts=5, at=time.time())


def body_of(server: SmtpServer, index: int = 0) -> str:
    part = server.messages[index].message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_one_failure_one_message(smtp: SmtpServer) -> None:
    notifier(smtp).failed([failure()])
    [got] = smtp.messages
    assert got.rcpt_tos == ["ops@example.com"]
    assert got.message["Subject"] == "[ferryman] people: /srv/in/export1.csv failed"
    body = body_of(smtp)
    assert "/srv/in/export1.csv: step deliver, 5 attempt(s): sftp partner:22: connection refused" in body
    assert "ferryman retry it1" in body


def test_several_failures_make_one_digest(smtp: SmtpServer) -> None:
    notifier(smtp).failed([failure(1), failure(2), failure(3)])
    [got] = smtp.messages
    assert got.message["Subject"] == "[ferryman] people: 3 items failed"
    body = body_of(smtp)
    for n in (1, 2, 3):
        assert f"/srv/in/export{n}.csv" in body
    assert "ferryman retry --flow people --failed" in body


def test_recovered(smtp: SmtpServer) -> None:
    notifier(smtp).recovered("people")
    assert smtp.messages[0].message["Subject"] == "[ferryman] people: working again"
    notifier(smtp, recovered=False).recovered("people")
    assert len(smtp.messages) == 1


def test_french_built_in_and_custom_templates(smtp: SmtpServer, tmp_path: Path) -> None:
    notifier(smtp, locale="fr_CA").failed([failure()])
    assert smtp.messages[0].message["Subject"] == "[ferryman] people : échec de /srv/in/export1.csv"
    (tmp_path / "digest.fr_CA.txt").write_text(
        "Subject: {{ count }} échecs dans {{ flow }}\n\n{% for f in failures %}{{ f.key }} {% endfor %}\n")
    custom = notifier(smtp, locale="fr_CA", template_dir=str(tmp_path),
                      templates={"failed": {"subject": "Échec {{ failure.key }}", "body": "{{ failure.error }}"}})
    custom.failed([failure(1), failure(2)])
    custom.failed([failure(7)])
    assert smtp.messages[1].message["Subject"] == "2 échecs dans people"
    assert body_of(smtp, 1).strip() == "k1 k2"
    assert smtp.messages[2].message["Subject"] == "Échec k7"


def test_transient_refusal_is_retried_then_raised(smtp: SmtpServer) -> None:
    smtp.refuse_data = "451 4.3.0 try later"
    with pytest.raises(TransientError, match="451"):
        notifier(smtp).failed([failure()])
    smtp.refuse_data = None
    notifier(smtp).failed([failure()])
    assert len(smtp.messages) == 1


def test_wrong_password_is_permanent_without_the_password(smtp: SmtpServer) -> None:
    model = TypeAdapter(AnyNotifier).validate_python(
        {"type": "email", "connection": "mail", "to": "ops@example.com"})
    bad = EmailNotifier("ops", model, {"mail": smtp.connection(password="nope-nope-123")})  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match="refused") as caught:
        bad.failed([failure()])
    assert "nope-nope-123" not in str(caught.value) and PASSWORD not in str(caught.value)


def test_missing_connection_is_permanent(smtp: SmtpServer) -> None:
    model = TypeAdapter(AnyNotifier).validate_python({"type": "email", "connection": "mail", "to": "a@example.com"})
    with pytest.raises(PermanentError, match="no smtp connection named 'mail'"):
        EmailNotifier("ops", model).failed([failure()])  # type: ignore[arg-type]


def test_invalid_recipient_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="holds a line break"):
        TypeAdapter(AnyNotifier).validate_python(
            {"type": "email", "connection": "mail", "to": "a@example.com\r\nBcc: x@example.com"})


def test_the_built_in_templates_are_valid_jinja2() -> None:
    """They are built without validation (so that loading a config with an email notifier does not
    import Jinja2): the checks a user's template gets, run here instead."""
    from ferryman.notify.email import BUILT_IN
    from ferryman.steps.email import MailTemplate

    assert {key.split(".")[0] for key in BUILT_IN} == {"failed", "digest", "recovered"}
    for key, template in BUILT_IN.items():
        assert MailTemplate.model_validate(template.model_dump()) == template, key
