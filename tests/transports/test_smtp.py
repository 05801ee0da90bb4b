"""`SmtpSender` and the ``smtp`` connection check against aiosmtpd (STARTTLS and implicit TLS)."""

from __future__ import annotations

import pytest

from ferryman.errors import PermanentError, TransientError
from ferryman.probe import check_connection
from servers import smtp as smtp_servers
from servers.smtp import PASSWORD, SmtpServer
from support import free_port

smtp = smtp_servers.smtp
smtps = smtp_servers.smtps
_smtp_starttls = smtp_servers._smtp_starttls
_smtp_implicit = smtp_servers._smtp_implicit


def test_check_starttls_and_implicit(smtp: SmtpServer, smtps: SmtpServer) -> None:
    assert check_connection("mail", smtp.connection()) == "logged in as mailer (STARTTLS); NOOP answered 250"
    assert check_connection("mail", smtps.connection()) == "logged in as mailer (implicit TLS); NOOP answered 250"


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"password": "bad-password-1"}, PermanentError, "login as 'mailer' refused: 535"),
    ({"ca_file": None}, PermanentError, "TLS certificate not trusted"),
    ({"tls": "implicit"}, PermanentError, "TLS failed"),
    ({"host": "no-such-host.invalid"}, TransientError, 'cannot resolve host "no-such-host.invalid" \\(DNS: '),
])
def test_check_failures_are_one_clear_line(smtp: SmtpServer, change: dict[str, object],
                                           error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        check_connection("mail", smtp.connection(**change))
    assert "\n" not in str(caught.value)
    assert PASSWORD not in str(caught.value) and "bad-password-1" not in str(caught.value)


def test_check_refused_is_transient(smtp: SmtpServer) -> None:
    with pytest.raises(TransientError, match="Connection refused"):
        check_connection("mail", smtp.connection(port=free_port()))
