"""The `imap` source against a real Dovecot: search, cursor, what items carry, bad input, disposal."""
# ruff: noqa: F811 - pytest fixtures are imported by name and used as arguments

from __future__ import annotations

import os
import stat
from email.message import EmailMessage
from pathlib import Path

import pytest
from imap_harness import MakeSource, admit, make_source  # noqa: F401 - fixture

from ferryman.errors import PermanentError, TransientError
from ferryman.item import Outcome
from ferryman.sources.imap import ImapSource
from ferryman.steps.base import StepContext
from ferryman.steps.meta import MetaConfig, MetaStep
from servers.dovecot import Dovecot, dovecot, mail  # noqa: F401 - fixture
from support import ferryman

ITRP = {"match": {"from": "itrp", "headers": {"X-ITRP-ExportID": ["777", "779"]}}, "take": "link",
        "headers": {"export_id": "X-ITRP-ExportID"}}


def link_mail(export_id: int, url: str | None = None) -> EmailMessage:
    url = url or f"https://exports.test/{export_id}/20240131-people.zip?token=abc"
    return mail(f"Export {export_id} ready", export_id=export_id,
                body=f"Your export is ready.\nDownload it from {url}\nKind regards")


def test_match_is_evaluated_by_the_server_and_others_are_ignored(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    first = dovecot.append(user, link_mail(777))
    dovecot.append(user, link_mail(781))                       # an export id not configured
    dovecot.append(user, link_mail(7777))                      # the server matches "777" as a substring
    dovecot.append(user, mail("Lunch?", body="see https://example.com/menu"))  # not from ITRP
    second = dovecot.append(user, link_mail(779))
    source = make_source(dovecot, user, **ITRP)

    found = source.scan()

    assert [c.meta["export_id"] for c in found] == ["777", "779"]
    assert [c.meta["mail_uid"] for c in found] == [str(first), str(second)]
    assert found[0].meta["url"] == "https://exports.test/777/20240131-people.zip?token=abc"
    assert found[0].files == ()
    # Fetching the parts did not mark anything seen.
    assert all(b"\\Seen" not in dovecot.flags(user, uid) for uid in dovecot.uids(user))


def test_the_cursor_means_a_second_scan_fetches_nothing(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    for export_id in (777, 781, 779):
        dovecot.append(user, link_mail(export_id))
    source = make_source(dovecot, user, **ITRP)
    assert len(admit(source, source.scan())) == 2
    assert source.scan() == []          # admitted: the cursor moves past them
    cursor = source.flow.journal.get_cursor("t", "imap:INBOX")
    assert cursor is not None and cursor.endswith(":3")
    assert source.scan() == []
    newest = dovecot.append(user, link_mail(777))
    assert [c.meta["mail_uid"] for c in source.scan()] == [str(newest)]


def test_offered_but_not_admitted_mails_are_offered_again(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    dovecot.append(user, link_mail(777))
    source = make_source(dovecot, user, **ITRP)
    assert len(source.scan()) == 1
    # The engine never admitted it (a crash): the cursor did not pass it.
    again = source.scan()
    assert len(again) == 1
    admit(source, again)
    assert source.scan() == []


def test_uidvalidity_change_falls_back_to_message_ids(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    dovecot.append(user, link_mail(777))
    dovecot.append(user, link_mail(779))
    source = make_source(dovecot, user, **ITRP)
    admit(source, source.scan())
    # The server renumbered the mailbox: the saved cursor names another UIDVALIDITY.
    source.flow.journal.set_cursor("t", "imap:INBOX", "1:999")
    newest = dovecot.append(user, link_mail(779))

    found = source.scan()

    assert [c.meta["mail_uid"] for c in found] == [str(newest)]
    validity = found[0].meta["mail_uidvalidity"]
    admit(source, found)
    assert source.scan() == []
    assert source.flow.journal.get_cursor("t", "imap:INBOX") == f"{validity}:3"


def test_take_attachments_streams_each_matching_attachment(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    big = os.urandom(2_500_000)             # several partial FETCH chunks
    dovecot.append(user, mail("People", export_id=777, body="attached",
                              attachments=[("people.csv", b"id,name\n1,Ann\n"), ("big.csv", big),
                                           ("notes.txt", b"ignore me")]))
    source = make_source(dovecot, user, match={"headers": {"X-ITRP-ExportID": "777"}}, include=["*.csv"])

    (candidate,) = source.scan()

    assert [p.name for p in candidate.files] == ["people.csv", "big.csv"]
    assert candidate.files[0].read_bytes() == b"id,name\n1,Ann\n"
    assert candidate.files[1].read_bytes() == big
    assert candidate.files[0].parent == source.spool_root / f"{candidate.meta['mail_uidvalidity']}-1"


def test_attachment_names_are_reduced_to_plain_names(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    dovecot.append(user, mail("x", export_id=777, body="b", attachments=[
        ("../../etc/passwd", b"root:x"), ("..", b"dots"), ("a\\..\\..\\evil.csv", b"win")]))
    source = make_source(dovecot, user, match={"headers": {"X-ITRP-ExportID": ""}})

    (candidate,) = source.scan()

    names = [p.name for p in candidate.files]
    assert names == ["passwd", "attachment-3", "evil.csv"]
    assert all(p.parent.parent == source.spool_root for p in candidate.files)


def test_take_message_keeps_the_whole_mail(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    original = link_mail(777)
    dovecot.append(user, original)
    source = make_source(dovecot, user, match={"headers": {"X-ITRP-ExportID": "777"}}, take="message")

    (candidate,) = source.scan()

    (eml,) = candidate.files
    assert eml.suffix == ".eml"
    assert original["Message-ID"].encode() in eml.read_bytes()
    assert b"Download it from https://exports.test/777/" in eml.read_bytes()


def test_link_from_a_header(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    dovecot.append(user, mail("x", export_id=777, body="no link here",
                              headers={"X-Download": "https://exports.test/h.zip"}))
    source = make_source(dovecot, user, take="link", link_header="X-Download")
    (candidate,) = source.scan()
    assert candidate.meta["url"] == "https://exports.test/h.zip"


def test_a_mail_without_a_text_part_fails_alone(dovecot: Dovecot, make_source: MakeSource,
                                                tmp_path: Path) -> None:
    user = dovecot.new_user()
    dovecot.append(user, mail("no text", export_id=777, attachments=[("x.bin", b"\x00\x01")]))
    dovecot.append(user, link_mail(779))
    source = make_source(dovecot, user, **ITRP)

    broken, good = source.scan()

    assert "no text part to find a link in" in broken.meta["problem"]
    assert "mail UID 1" in broken.meta["problem"]
    assert "problem" not in good.meta and good.meta["url"].startswith("https://")
    # The source's implicit first step turns the problem into the item's failure.
    (implicit,) = ImapSource.implicit_steps
    step = MetaStep(MetaConfig.model_validate(implicit), source.flow)
    (item, other) = admit(source, [broken, good])
    with pytest.raises(PermanentError, match="no text part"):
        step.run(item, StepContext(source.flow, item, 0, tmp_path))
    step.run(other, StepContext(source.flow, other, 0, tmp_path))


def test_malformed_mime_does_not_stop_other_mails(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    broken = (b"From: ITRP <noreply@itrp.com>\r\nX-ITRP-ExportID: 777\r\nMessage-ID: <broken@x>\r\n"
              b"Subject: broken\r\nMIME-Version: 1.0\r\n"
              b"Content-Type: multipart/mixed; boundary=\"never-used\"\r\n\r\n"
              b"this is not multipart at all\r\n")
    bad_base64 = (b"From: ITRP <noreply@itrp.com>\r\nX-ITRP-ExportID: 777\r\nMessage-ID: <b64@x>\r\n"
                  b"Subject: b64\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                  b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: text/csv; name=x.csv\r\n"
                  b"Content-Disposition: attachment; filename=x.csv\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                  b"!!!! not base64 @@@\r\n--b--\r\n")
    dovecot.append(user, broken)
    dovecot.append(user, bad_base64)
    dovecot.append(user, mail("fine", export_id=777, body="b", attachments=[("ok.csv", b"a,b\n")]))
    source = make_source(dovecot, user, match={"headers": {"X-ITRP-ExportID": "777"}})

    found = source.scan()

    assert len(found) == 3
    assert "problem" in found[0].meta           # nothing to take from it
    assert "bad base64" in found[1].meta["problem"]
    assert not (source.spool_root / f"{found[1].meta['mail_uidvalidity']}-2").exists()
    assert found[2].files[0].read_bytes() == b"a,b\n"
    assert "problem" not in found[2].meta


def test_non_utf8_headers_become_text(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    raw = (b"From: ITRP <noreply@itrp.com>\r\nX-ITRP-ExportID: 777\r\nMessage-ID: <latin@x>\r\n"
           b"Subject: Caf\xe9 export \xff\r\nX-Team: =?utf-8?q?R=C3=A9seau?=\r\n\r\n"
           b"Download https://exports.test/a.zip\r\n")
    dovecot.append(user, raw)
    source = make_source(dovecot, user, take="link", headers={"team": "X-Team"})
    (candidate,) = source.scan()
    assert candidate.meta["mail_subject"] == "Café export ÿ"
    assert candidate.meta["team"] == "Réseau"
    assert candidate.meta["url"] == "https://exports.test/a.zip"


@pytest.mark.parametrize("after", ["keep", "seen", "delete", "move"])
def test_finalize_disposes_of_that_mail_only(dovecot: Dovecot, make_source: MakeSource, after: str) -> None:
    user = dovecot.new_user()
    ours = dovecot.append(user, mail("ours", export_id=777, body="b", attachments=[("a.csv", b"1")]))
    other = dovecot.append(user, mail("other", export_id=781, body="b"))
    dovecot.append(user, mail("deleted elsewhere", export_id=781, body="b"))
    with dovecot.client(user) as client:      # another client's \Deleted mail must survive our expunge
        client.select_folder("INBOX")
        client.add_flags([3], [b"\\Deleted"])
    source = make_source(dovecot, user, match={"headers": {"X-ITRP-ExportID": "777"}},
                         after={"move": "Archive"} if after == "move" else after)
    (item,) = admit(source, source.scan())
    spool = item.files[0].parent

    source.finalize(item, Outcome(True))

    inbox = dovecot.uids(user)
    if after in ("keep", "seen"):
        assert ours in inbox
        assert (b"\\Seen" in dovecot.flags(user, ours)) == (after == "seen")
    else:
        assert ours not in inbox
    if after == "move":
        with dovecot.client(user) as client:
            client.select_folder("Archive", readonly=True)
            assert len(client.search(["HEADER", "Subject", "ours"])) == 1
    assert other in inbox and 3 in inbox
    assert dovecot.flags(user, other) == set()
    assert not spool.exists()


def test_failed_mails_stay_untouched_with_their_spool(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    uid = dovecot.append(user, mail("ours", export_id=777, body="b", attachments=[("a.csv", b"1")]))
    source = make_source(dovecot, user, after={"move": "Archive"})
    (item,) = admit(source, source.scan())
    source.finalize(item, Outcome(False, "boom"))
    assert uid in dovecot.uids(user)
    assert dovecot.flags(user, uid) == set()
    assert item.files[0].exists()            # `ferryman retry` runs it again from the spool


def test_move_to_a_missing_mailbox_is_a_clear_error(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    uid = dovecot.append(user, mail("ours", export_id=777, body="b", attachments=[("a.csv", b"1")]))
    source = make_source(dovecot, user, after={"move": "No Such Box"})
    (item,) = admit(source, source.scan())
    with pytest.raises(TransientError, match=r"No Such Box"):
        source.finalize(item, Outcome(True))
    assert uid in dovecot.uids(user)


def test_a_missing_mailbox_is_a_clear_error(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    source = make_source(dovecot, user, mailbox="Exports")
    with pytest.raises(TransientError, match=r"'Exports'.*does not exist"):
        source.scan()


def test_wrong_password_is_permanent_and_not_echoed(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    source = make_source(dovecot, user, connection={"password": "hunter2-wrong"})
    with pytest.raises(PermanentError, match="login refused") as info:
        source.scan()
    assert "hunter2" not in str(info.value)


def test_starttls_and_an_untrusted_certificate(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    dovecot.append(user, link_mail(777))
    starttls = make_source(dovecot, user, connection={"port": dovecot.port, "tls": "starttls"}, **ITRP)
    assert len(starttls.scan()) == 1
    untrusted = make_source(dovecot, user, connection={"ca_file": None}, **ITRP)
    with pytest.raises(PermanentError, match=r"not trusted.*ca_file"):
        untrusted.scan()


def test_xoauth2_with_a_token(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    dovecot.append(user, link_mail(777))
    dovecot.tokens["good-token"] = user
    source = make_source(dovecot, user, connection={"password": None, "oauth2": {"token": "good-token"}}, **ITRP)
    assert len(source.scan()) == 1
    expired = make_source(dovecot, user, connection={"password": None, "oauth2": {"token": "stale"}}, **ITRP)
    with pytest.raises(PermanentError, match="XOAUTH2 login refused") as info:
        expired.scan()
    assert "stale" not in str(info.value)


def test_xoauth2_token_command_is_asked_again_when_the_token_expired(
        dovecot: Dovecot, make_source: MakeSource, tmp_path: Path) -> None:
    user = dovecot.new_user()
    dovecot.append(user, link_mail(777))
    dovecot.tokens["fresh-token"] = user
    script = tmp_path / "token.sh"
    # The first call prints an expired token, later calls a fresh one (like a refresh-token helper).
    script.write_text(f'#!/bin/sh\nif [ -e {tmp_path}/asked ]; then echo fresh-token; '
                      f'else touch {tmp_path}/asked; echo expired-token; fi\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    source = make_source(dovecot, user, connection={"password": None, "oauth2": {"token_command": [str(script)]}},
                         **ITRP)
    assert len(source.scan()) == 1
    assert (tmp_path / "asked").exists()


def test_check_connect_logs_in_to_imap(dovecot: Dovecot, tmp_path: Path) -> None:
    user = dovecot.new_user()
    config = tmp_path / "f.toml"
    for password, code, expected in (("secret", 0, "ok — logged in as"), ("wrong", 2, "FAILED — ")):
        config.write_text(f"""
[flows.mail.source]
type = "imap"
connection = "mail"

[[flows.mail.steps]]
type = "deliver"
to = "{tmp_path / 'out'}"

[connections.mail]
type = "imap"
host = "127.0.0.1"
port = {dovecot.port}
tls = "starttls"
user = "{user}"
password = {{ env = "IMAP_TEST_PASSWORD" }}
ca_file = "{dovecot.cert}"
""")
        done = ferryman("check", "--connect", "-c", str(config), env={"IMAP_TEST_PASSWORD": password})
        assert done.returncode == code, done.stdout + done.stderr
        assert expected in done.stdout
        assert "wrong" not in done.stdout
    assert "login refused" in done.stdout


@pytest.mark.parametrize("snippet, message", [
    ({"idle_restart": "45m"}, "idle_restart must be between 1s and 29m"),
    ({"link_pattern": "https?://(["}, "link_pattern: not a valid regex"),
    ({"match": {"since": "last tuesday"}}, "neither a date"),
    ({"take": "body"}, "take: Input should be 'attachments', 'link' or 'message'"),
    ({"after": {"move": " "}}, "name the mailbox to move mails to"),
    ({"after": "archive"}, "after"),
    ({"match": {"header": {"X-A": "1"}}}, "unknown key"),
])
def test_config_errors(snippet: dict[str, object], message: str) -> None:
    from ferryman.config import validate
    from ferryman.errors import ConfigError

    raw = {"connections": {"mail": {"type": "imap", "host": "h", "user": "u", "password": "p"}},
           "flows": {"f": {"source": {"type": "imap", "connection": "mail", **snippet}}}}
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert message in str(info.value)


@pytest.mark.parametrize("capability, after, gone, deleted_flag", [
    ("IMAP4rev1 IDLE UIDPLUS", {"move": "Archive"}, True, False),      # no MOVE: COPY + EXPUNGE of that UID
    ("IMAP4rev1 IDLE", "delete", False, True),                        # no UIDPLUS: only marked \Deleted
])
def test_finalize_without_move_or_uidplus(make_source: MakeSource, capability: str, after: object,
                                          gone: bool, deleted_flag: bool) -> None:
    server = Dovecot(capability=capability)
    server.start()
    try:
        user = server.new_user()
        ours = server.append(user, mail("ours", export_id=777, body="b", attachments=[("a.csv", b"1")]))
        other = server.append(user, mail("someone else's", export_id=781, body="b"))
        with server.client(user) as client:
            client.select_folder("INBOX")
            client.add_flags([other], [b"\\Deleted"])
        source = make_source(server, user, match={"headers": {"X-ITRP-ExportID": "777"}}, after=after)
        (item,) = admit(source, source.scan())
        with server.client(user) as client:
            assert not client.has_capability("MOVE")
        source.finalize(item, Outcome(True))
        assert (ours not in server.uids(user)) == gone
        if not gone:
            assert (b"\\Deleted" in server.flags(user, ours)) == deleted_flag
        assert other in server.uids(user)                              # never expunged by us
        if isinstance(after, dict):
            with server.client(user) as client:
                client.select_folder("Archive", readonly=True)
                assert len(client.search("ALL")) == 1
    finally:
        server.close()


def test_three_header_values_and_a_non_ascii_subject(dovecot: Dovecot, make_source: MakeSource) -> None:
    user = dovecot.new_user()
    for export_id in (1, 2, 3, 4):
        dovecot.append(user, mail(f"Export {export_id} prêt", export_id=export_id, body="https://x.test/a.zip"))
    source = make_source(dovecot, user, take="link", headers={"export_id": "X-ITRP-ExportID"},
                         match={"subject": "prêt", "headers": {"X-ITRP-ExportID": ["1", "3", "4"]}})
    assert [c.meta["export_id"] for c in source.scan()] == ["1", "3", "4"]


@pytest.mark.parametrize("since, found", [("2000-01-31", 1), ("30d", 1), ("2999-01-01", 0)])
def test_since(dovecot: Dovecot, make_source: MakeSource, since: str, found: int) -> None:
    user = dovecot.new_user()
    dovecot.append(user, link_mail(777))
    source = make_source(dovecot, user, take="link", match={"since": since})
    assert len(source.scan()) == found
