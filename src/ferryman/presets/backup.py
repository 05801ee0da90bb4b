"""``ferryman init backup``: nightly pg_dump of each database, kept by GFS retention, copied to S3."""

from __future__ import annotations

import json


def render_backup(to: str = "/srv/backups") -> str:
    """A commented config: pg_dump per database at midnight → `to`/<db> → prune (daily 7, weekly 5,
    monthly 12); the S3 copy and its prune are written commented out."""
    q = json.dumps  # TOML basic strings are JSON strings for these values
    folder = to.rstrip("/") or "/"
    return f'''# ferryman configuration: database backups with GFS retention (docs/steps/backup.md).
# Check it with `ferryman check`, try it with `ferryman run --once --now`, then keep
# `ferryman run` running (a systemd service), or call `ferryman run --once` from cron.

[ferryman]
root = ".ferryman"

[connections.db]
type = "postgres"
dsn = {{ env = "BACKUP_PG_DSN" }}            # e.g. "host=127.0.0.1 user=backup"
# password = {{ env = "BACKUP_PG_PASSWORD" }}  # given to pg_dump in a 0600 passfile only

# [connections.store]
# type = "s3"
# endpoint = "https://s3.example.com"      # S3-compatible stores; AWS when unset
# access_key = {{ env = "BACKUP_S3_ACCESS_KEY" }}
# secret_key = {{ env = "BACKUP_S3_SECRET_KEY" }}

[flows.backups]
description = "Nightly pg_dump of each database, daily 7 / weekly 5 / monthly 12"
retry = {{ attempts = 3, delay = "10m" }}
expect = {{ cron = "0 0 * * *", within = "2h" }}   # alert when a night's backups did not succeed
# notify = ["ops"]                          # see [notify.*]

[flows.backups.source]
type = "schedule"
cron = "0 0 * * *"                          # midnight
timezone = "UTC"                            # days, weeks and months of the retention too
for_each = ["mydb"]                         # or {{ file = "databases.txt" }}, or {{ command = ["psql", …] }}

[[flows.backups.steps]]
type = "pg_dump"
connection = "db"
database = "{{meta.each}}"
format = "custom"                           # or "tar", "plain", "directory-tar" (with jobs = 4)
name = "{{meta.each}}_{{now:%Y%m%d-%H%M%S}}.dump"
# extra_args = ["--no-owner"]

[[flows.backups.steps]]
type = "deliver"
to = {q(folder + "/{meta.each}")}

[[flows.backups.steps]]
type = "prune"
label = "prune local"
path = {q(folder + "/{meta.each}")}
include = ["{{meta.each}}_*.dump"]
time_from_name = {{ pattern = '_(?P<ts>\\d{{8}}-\\d{{6}})\\.dump$', format = "%Y%m%d-%H%M%S" }}
timezone = "UTC"
keep = {{ daily = 7, weekly = 5, monthly = 12 }}   # also last, hourly, yearly, within = "30d"
max_delete = 10                             # refuse a run that would delete more (a wrong pattern, a wrong clock)
# dry_run = true                            # journal what would go and why each file stays, delete nothing

# [[flows.backups.steps]]
# type = "deliver"
# to = "s3://store/my-bucket/backups/{{meta.each}}"

# [[flows.backups.steps]]
# type = "prune"
# label = "prune s3"
# path = "s3://store/my-bucket/backups/{{meta.each}}/"
# include = ["{{meta.each}}_*.dump"]
# time_from_name = {{ pattern = '_(?P<ts>\\d{{8}}-\\d{{6}})\\.dump$', format = "%Y%m%d-%H%M%S" }}
# timezone = "UTC"
# keep = {{ daily = 7, weekly = 5, monthly = 12 }}
# max_delete = 10
'''
