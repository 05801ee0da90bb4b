"""``ferryman init folder``: watch a folder and deliver what arrives to another folder."""

from __future__ import annotations

import json


def render_folder(inbox: str = "inbox", outbox: str = "outbox", archive: str = "archive") -> str:
    # A relative move folder is relative to the watched folder (and never scanned itself).
    """A commented config: inbox → (unzip if zip) → outbox, originals moved to a dated archive."""
    q = json.dumps  # TOML basic strings are JSON strings for these values
    return f'''# ferryman configuration — see docs/reference.md for every key.
# Check it with `ferryman check`, run it once with `ferryman run --once`,
# or keep it running with `ferryman run`.

[ferryman]
root = ".ferryman"        # journal, work folders, logs and pid file (relative to this file)
workers = 4               # items processed at the same time

[flows.inbox]
description = "Files dropped in the inbox are delivered to the outbox, exactly once."
retry = {{ attempts = 5, delay = "30s", backoff = 2.0, max_delay = "30m" }}
# notify = ["ops"]        # see [notify.*] below
# stop_on_error = true    # pause the flow after a failure until `ferryman resume inbox`

[flows.inbox.source]
type = "folder"
path = {q(inbox)}
include = ["*"]           # globs, e.g. ["*.csv", "*.zip"]
# ready = "auto"          # close/rename events, or stable for `settle` when found by a scan
after = {{ move = {q(archive + "/{now:%Y-%m}")} }}   # under the inbox; or "keep" (default) / "delete"

[[flows.inbox.steps]]
type = "deliver"
to = {q(outbox)}           # or "sftp://CONNECTION/path", "ftp://…", "s3://CONNECTION/bucket/prefix"
# name = "{{stem}}_{{now:%Y%m%d}}{{suffix}}"
# if_exists = "overwrite"  # skip | rename | fail

# [notify.ops]
# type = "command"
# command = ["logger", "-t", "ferryman"]
'''
