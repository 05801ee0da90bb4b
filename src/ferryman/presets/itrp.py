"""``ferryman init itrp``: the ITRP Export Monitor's generated config, as one ferryman flow.

The defaults are those of ``itrp-export-monitor generate``: Gmail IMAP over
TLS, mailbox INBOX, processed mails archived to ``[Gmail]/All Mail``,
``unzip = true``, ``sub_dirs = false``, files stored under ``/tmp/exports``.
One flow serves every export id (one IMAP search ``HEADER X-ITRP-ExportID``
with the ids OR-ed, one IDLE connection), as the old ``export.ids = [...]``
did; write one flow per id only when ids need different steps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

EXPORT_TYPE = r"(?:^|-)(?P<export_type>[^-]+)\.csv$"
"""ITRP's export type: the text between the last '-' and '.csv' (``20240131-people.csv`` → people)."""


def _q(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for these values


def _literal(value: str) -> str:
    return f"'{value}'"  # a TOML literal string: backslashes stay as written (regexes)


def render_itrp(export_ids: Sequence[int] = (), email: str = "", to: str = "/tmp/exports",
                ftp: str | None = None, ftp_dir: str | None = None, *, unzip: bool = True,
                sub_dirs: bool = False, csv_col_sep: str | None = None, csv_row_sep: str | None = None,
                csv_quote_char: str | None = None, csv_replace_newlines: bool = False,
                archive: str = "[Gmail]/All Mail", imap_host: str = "imap.gmail.com") -> str:
    """A commented config equivalent to ``itrp-export-monitor generate[ids, email, …]``.

    Raises `ValueError` (shown by ``ferryman init``) for missing ids or a bad address.
    """
    ids = [int(i) for i in export_ids]
    if not ids:
        raise ValueError("give at least one --export-id (the number in the Scheduled Export's URL)")
    if any(i <= 0 for i in ids):
        raise ValueError("export ids are positive numbers")
    if not email or "@" not in email or any(c.isspace() for c in email):
        raise ValueError("give the mailbox address the exports are sent to with --email ADDRESS")
    if csv_quote_char is not None and len(csv_quote_char) != 1:
        raise ValueError("csv_quote_char is one character")
    if ftp_dir and not ftp:
        raise ValueError("--ftp-dir is a folder on the FTP host: give that host with --ftp HOST")
    if not unzip and (csv_col_sep or csv_row_sep or csv_quote_char or csv_replace_newlines):
        raise ValueError("CSV options need unzip (ITRP exports are zipped CSV files)")
    ids_text = ", ".join(str(i) for i in ids)
    id_values = ", ".join(_q(str(i)) for i in ids)
    flow = "itrp-exports"
    parts = [f'''# ferryman configuration written by `ferryman init itrp` — the ITRP Export Monitor, done right.
# Export ids: {ids_text}.  Check it with `ferryman check`, try it with `ferryman run --once`,
# keep it running with `ferryman run` (or cron `ferryman run --exit-when-idle 10m`, the old
# exit_when_idle).  docs/migrating-from-itrp.md maps every old option to its place here.

[ferryman]
root = ".ferryman"          # journal, work folders, logs and pid file (the old export.root)

[connections.mail]
type = "imap"
host = {_q(imap_host)}     # the old imap_address
port = 993                  # imap_port
tls = "implicit"            # imap_ssl = true; "starttls" or false otherwise
user = {_q(email)}
password = {{ env = "FERRYMAN_IMAP_PASSWORD" }}   # export FERRYMAN_IMAP_PASSWORD=… (never in this file)
# Gmail and Microsoft 365 prefer OAuth2 over passwords: drop `password` and use
# oauth2 = {{ token_command = ["/usr/local/bin/fetch-imap-token"] }}   # prints a fresh access token
''']
    if ftp:
        parts.append(f'''
[connections.ftp]
type = "ftp"
host = {_q(ftp)}            # the old to_ftp
user = "anonymous"          # ftp_user_name
password = {{ env = "FERRYMAN_FTP_PASSWORD" }}   # ftp_password
tls = false                 # the old monitor spoke plain FTP; "explicit" for FTPS where the server can
''')
    parts.append(f'''
# on_exception → a notifier, told once per failed mail (with digests and a recovery notice):
# [notify.ops]
# type = "command"
# command = ["logger", "-t", "ferryman-itrp"]

[flows.{flow}]
description = "ITRP scheduled exports {ids_text}: download, {'unzip, ' if unzip else ''}store."
retry = {{ attempts = 5, delay = "1m", backoff = 2.0, max_delay = "1h" }}   # a failed mail stays and is retried
# notify = ["ops"]          # the old on_exception

[flows.{flow}.source]
type = "imap"
connection = "mail"
mailbox = "INBOX"           # imap_mailbox
match = {{ from = "itrp", headers = {{ "X-ITRP-ExportID" = [{id_values}] }} }}   # ids; other mails are never touched
take = "link"               # the download link in the mail's text
headers = {{ export_id = "X-ITRP-ExportID", export_token = "X-ITRP-Export" }}
after = {{ move = {_q(archive)} }}   # imap_archive; only mails that were processed, only after success

[[flows.{flow}.steps]]
type = "download"           # streamed to disk, https only
# allowed_hosts = ["*.itrp.com", "*.4me.com"]
# Behind a corporate TLS proxy (one that inspects HTTPS and re-signs it with the company's own CA),
# trust that CA's certificate (PEM; a relative path is relative to this file):
# ca_file = "/usr/local/share/ca-certificates/corporate-proxy-ca.pem"
''')
    if unzip:
        parts.append(f'''
[[flows.{flow}.steps]]
type = "unzip"              # unzip = true (remove this step for unzip = false)
''')
    csv_wanted = bool(csv_col_sep or csv_row_sep or csv_quote_char or csv_replace_newlines)
    output = {k: v for k, v in (("delimiter", csv_col_sep), ("lineterminator", csv_row_sep),
                                ("quotechar", csv_quote_char)) if v is not None}
    output_text = ", ".join(f"{k} = {_q(v)}" for k, v in output.items()) or \
        'delimiter = ";", lineterminator = "\\r\\n"'
    csv_lines = [
        f"[[flows.{flow}.steps]]",
        'type = "csv"               # csv_col_sep / csv_row_sep / csv_quote_char / csv_value_proc',
        f"output = {{ {output_text} }}",
        "replace = [{ pattern = '\\r?\\n', with = \" \" }]   # the README's csv_value_proc example",
    ]
    if not csv_replace_newlines and csv_wanted:
        csv_lines[-1] = "# " + csv_lines[-1]
    if csv_wanted:
        parts.append("\n" + "\n".join(csv_lines) + "\n")
    else:
        parts.append("\n# Rewrite the CSV files (the old csv_* options):\n" +
                     "\n".join("# " + line for line in csv_lines) + "\n")
    meta_step = [f"[[flows.{flow}.steps]]",
                 'type = "meta"               # sub_dirs: the export type of each CSV from its name',
                 f"from_name = {_literal(EXPORT_TYPE)}",
                 'include = ["*.csv"]']
    if sub_dirs:
        parts.append("\n" + "\n".join(meta_step) + "\n")
    else:
        parts.append("\n# sub_dirs = true: uncomment this step and the {meta.export_type} `to` below\n" +
                     "\n".join("# " + line for line in meta_step) + "\n")
    sub = "/{meta.export_type}"
    parts.append(f'''
[[flows.{flow}.steps]]
type = "deliver"            # written as <name>.in_progress, then renamed
to = {_q(to + sub if sub_dirs else to)}{'' if sub_dirs else f"""
# to = {_q(to + sub)}   # sub_dirs = true"""}
''')
    if ftp:
        folder = (ftp_dir or ".").strip("/")
        folder = "" if folder == "." else folder
        parts.append(f'''
[[flows.{flow}.steps]]
type = "deliver"            # to_ftp / to_ftp_dir (folders with dots are kept)
to = {_q(f"ftp://ftp/{folder}" + (sub if sub_dirs else ""))}
''')
    return "".join(parts)
