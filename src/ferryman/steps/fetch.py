"""``fetch``: download the remote original an ``sftp``/``ftp``/``s3`` source found, into the work folder.

Remote sources list without downloading; their candidates carry
``meta.remote_url`` and the engine runs this step first for them (see
`Source.implicit_steps`), so it is never written in a config by hand.  The
download is streamed to ``<work folder>/<meta.name>`` over a pooled
connection; a file whose size differs from the one listed has changed
since it was found, and the item fails (the new version is a new item).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Literal

from pydantic import Field

from ferryman import templates
from ferryman.errors import PermanentError, TransientError
from ferryman.item import Item
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.transports import parse_location


class FetchConfig(StepConfig):
    """Download the item's remote original (added by remote sources; not written by hand)."""

    type: Literal["fetch"] = Field(description="Download meta.remote_url into the work folder.")


class FetchStep(Step[FetchConfig]):
    """Streams the remote file to the work folder; the item then carries that file."""

    Config = FetchConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        url = item.meta.get("remote_url")
        if not url:
            raise PermanentError("fetch needs meta.remote_url (set by the sftp, ftp and s3 sources)")
        location = parse_location(url)
        name = templates.render_name("{name}", {"name": item.meta.get("name") or Path(location.path).name})
        local = ctx.work_dir / name
        try:
            with self.flow.transports.open(location) as transport:
                transport.get(location.path, local)
        except BaseException:
            with contextlib.suppress(OSError):
                local.unlink()
            raise
        size = local.stat().st_size
        expected = item.meta.get("size")
        if expected is not None and expected.isdigit() and int(expected) != size:
            local.unlink()
            if size < int(expected):
                # Shorter than listed: a cut transfer, or the file is being rewritten.
                raise TransientError(f"{url}: downloaded {size} bytes, {expected} were listed")
            raise PermanentError(
                f"{url} changed since it was found ({expected} bytes then, {size} now); "
                "the new version will be picked up as a new item"
            )
        return StepResult(files=[local], outputs={"fetched": url, "bytes": size})
