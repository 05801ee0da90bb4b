"""``ferryman init piexporter``: PIExporter's export loop as one ``http`` flow (see
docs/migrating-from-piexporter.md for how each of its settings maps)."""

from __future__ import annotations

import json


def render_piexporter(url: str = "https://pi.example.org/api/export", user: str = "exporter",
                      path: str = "/srv/pi") -> str:
    """A commented config: poll the forms every 5 minutes, back up, decrypt, append, delete when safe."""
    q = json.dumps  # TOML basic strings are JSON strings for these values
    return f'''# ferryman configuration for a PIExporter (MindTrails) export — see
# docs/migrating-from-piexporter.md.  Check it with `ferryman check --connect`, run it once with
# `ferryman run --once`, keep it running with `ferryman run` (it polls every 5 minutes itself:
# no cron entry), rebuild CSVs from the backups with `ferryman recover pi --into DIR`.

[ferryman]
root = {q(path + "/ferryman")}   # journal, work folders, logs, pid file

# PIExporter's log.config: Debug.log, Daily.log, Error.log, Break_down.log, rotated at midnight,
# kept for 366 days.  The mail it sent on CRITICAL is the notifier below.
[ferryman.log]
dir = {q(path + "/logs")}
files = {{ debug = "Debug.log", info = "Daily.log", warning = "Error.log", critical = "Break_down.log" }}
rotate = "midnight"
keep = 366

[connections.pi]
type = "http"
base_url = {q(url)}           # PIExporter's SERVER
auth = {{ basic = {{ user = {q(user)}, password = {{ env = "PI_PASSWORD" }} }} }}   # USER, PASS (never in this file)
# ca_file = "/etc/ferryman/pi-ca.pem"   # a private CA

# [connections.smtp]
# type = "smtp"
# host = "smtp.example.org"
# user = "ferryman@example.org"
# password = {{ env = "SMTP_PASSWORD" }}
# from = "ferryman@example.org"

# [notify.admin]                # the CRITICAL mail: failed items, replayed records, failed deletes
# type = "email"
# connection = "smtp"
# to = ["admin@example.org"]

[flows.pi]
description = "MindTrails study data: every record once in <form>_<date>.csv, deleted on the server only when safe."
# notify = ["admin"]
retry = {{ attempts = 5, delay = "30s", backoff = 2.0, max_delay = "30m" }}

[flows.pi.source]
type = "http"
connection = "pi"
every = "5m"
collections = {{ list = "", name = "name", deleteable = "deleteable", size = "size" }}   # or ["intake", "followup"]
records = {{ path = "{{collection}}", list = "$", id = "id", since_param = "greaterThan" }}
raw_dir = {q(path + "/raw_data")}
raw_name = "{{collection}}_{{now:%b_%d_%Y_%H_%M_%S}}.json"   # DATE_FORMAT %b_%d_%Y, TIME_FORMAT %H_%M_%S
ack = {{ method = "DELETE", path = "{{collection}}/{{id}}" }}
delete = false            # PIExporter's DELETE_MODE: turn on once the CSVs look right
# batch = 200             # records per item; each record is still written exactly once

[[flows.pi.steps]]
type = "decrypt_fields"
fields = ["*RSA"]
key = {{ file = "/etc/ferryman/pi_private.pem" }}   # PRIVATE_FILE; passphrase = {{ env = "PI_KEY_PASSPHRASE" }}
padding = "pkcs1v15"      # or "oaep-sha1", "oaep-sha256"
on_error = "keep"         # as PIExporter: a value that does not decrypt keeps its ciphertext …
on_bad_base64 = "empty"   # … and one that is not base64 is written empty (both logged, without the value)
# workers = 2             # decrypt in this many processes

[[flows.pi.steps]]
type = "append_csv"
to = {q(path + "/active_data")}
name = "{{meta.collection}}_{{now:%b_%d_%Y}}.csv"
# columns = ["id", "…"]   # default: the sorted keys of a new file's first record, as PIExporter
# extra = "error"         # a record with keys the header lacks: "ignore" or "new_file"
'''
