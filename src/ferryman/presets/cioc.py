"""``ferryman init cioc``: CIOC's scheduled tasks (cioccronjobs) as three flows.

- ``downloads`` (newdownloads.py): per database of ``--database`` (the old ``-a DatabaseName``),
  chosen tables to a portable SQLite file with ``sql_export``, zipped with a password, delivered
  over yesterday's zip, Tuesday to Saturday at 03:00 Toronto time;
- ``log-errors`` (process_logged_errors.py): every 15 minutes, ``log_scan`` over the logs and one
  digest mail; nothing is sent when nothing matched;
- ``compress-logs`` (compress_old_logs.py): the ``compress_old`` step, logs untouched for 6 days into a dated zip.

Secrets are read from the environment (CIOC_DSN, CIOC_ZIP_PASSWORD, CIOC_SMTP_PASSWORD), never
written into the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence


def render_cioc(databases: Sequence[str] = (), email: str = "ops@example.org", to: str = "downloads",
                logs: str = "logs") -> str:
    """The commented config; `ValueError` (shown by ``ferryman init``) for a bad address or database name."""
    names = list(databases) or ["cioc_a", "cioc_b"]
    for name in names:
        if not name or any(c in name for c in "\n\r\"'\\"):
            raise ValueError(f"--database {name!r} is not a database name")
    if "@" not in email or any(c.isspace() or c in "\"'\\,;<>" for c in email):
        raise ValueError(f"--email {email!r} is not one plain address (ops@example.org)")
    q = json.dumps  # a TOML basic string is a JSON string for these values
    each = ", ".join(q(n) for n in names)
    return f'''# CIOC's scheduled tasks as ferryman flows (docs/steps/sql-export.md, docs/steps/log-scan.md).
# Check it with `ferryman check --connect`, run it once with `ferryman run --once --now`,
# or keep it running with `ferryman run`.
# Secrets come from the environment: CIOC_DSN, CIOC_ZIP_PASSWORD, CIOC_SMTP_PASSWORD.

[ferryman]
root = ".ferryman"

[connections.db]
type = "postgres"
dsn = {{ env = "CIOC_DSN" }}        # the cioc_maintenance_role, e.g. "postgresql://cioc_maintenance_role@db/postgres"

[connections.mail]
type = "smtp"
host = "127.0.0.1"                # CIOC_MAIL_HOST; port 587 with STARTTLS by default
# user = "cioc-tasks"             # CIOC_MAIL_USERNAME
# password = {{ env = "CIOC_SMTP_PASSWORD" }}
from = {q(email)}

[notify.ops]                      # a failed task is told once, with a recovery notice
type = "email"
connection = "mail"
to = {q(email)}

# ---- newdownloads.py: chosen tables of each database, zipped with a password ----------------

[flows.downloads]
notify = ["ops"]
retry = {{ attempts = 3, delay = "10m" }}

[flows.downloads.source]
type = "schedule"
cron = "0 3 * * 2-6"              # Tuesday to Saturday
timezone = "America/Toronto"
for_each = [{each}]   # `ferryman run --once --now --each NAME` runs one
# for_each = {{ command = ["psql", "-Atc", "select datname from pg_database where datname like 'cioc%'"] }}

[[flows.downloads.steps]]
type = "sql_export"
connection = "db"
database = "{{meta.each}}"
tables = ["*"]                                   # fnmatch patterns
skip_tables = ["*_history", "*_log", "tmp_*"]
skip_columns = {{ "*" = ["password*"] }}          # table pattern = column patterns
# where = {{ "cic_record" = "deleted_date IS NULL", "gbl_member" = "db_name = {{meta.each}}" }}
format = "sqlite"                                # or "csv": one file per table
name = "{{meta.each}}.sqlite"

[[flows.downloads.steps]]
type = "zip"
name = "{{meta.each}}.zip"
password = {{ env = "CIOC_ZIP_PASSWORD" }}        # AES-256, as 7za -p did

[[flows.downloads.steps]]
type = "deliver"
to = {q(to + "/{meta.each}")}
if_exists = "overwrite"                          # replaces yesterday's zip by a rename

# ---- process_logged_errors.py: new errors in the logs, one mail every 15 minutes -------------

[flows.log-errors]
notify = ["ops"]

[flows.log-errors.source]
type = "schedule"
every = "15m"

[[flows.log-errors.steps]]
type = "log_scan"
paths = [{q(logs + "/*/*.log")}]                # CIOC_LOG_ROOT: one folder per instance
# patterns = ['\\b(ERROR|CRITICAL)\\b', '^Traceback \\(most recent call last\\):']   # the default, and FATAL
# ignore = ['Broken pipe']

[[flows.log-errors.steps]]
type = "email"
connection = "mail"
to = {q(email)}
subject = "CIOC: {{{{ meta.log_entries }}}} new errors in the logs"
body = """{{{{ meta.log_excerpt }}}}
(the whole digest is attached)
"""

# ---- compress_old_logs.py: logs untouched for 6 days into a dated zip ----------------------------

[flows.compress-logs]
notify = ["ops"]

[flows.compress-logs.source]
type = "schedule"
cron = "30 2 * * *"
timezone = "America/Toronto"
for_each = ["cioc_a", "cioc_b"]                # the instance folders under the log root

[[flows.compress-logs.steps]]
type = "compress_old"
path = {q(logs + "/{meta.each}")}
include = ["*.log*"]
age = "6d"
name = "logs-{{meta.each}}-{{now:%Y%m%d}}.zip"
'''
