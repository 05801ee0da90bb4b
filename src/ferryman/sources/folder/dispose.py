"""What the folder source does with an original once its outcome is committed: keep, delete
or move it (with its done file), where a move goes (and which folders are therefore never
scanned), and moving without ever overwriting.  `FolderSource.finalize` calls `dispose`.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ferryman import templates
from ferryman.errors import PermanentError
from ferryman.flow import FlowContext
from ferryman.item import Item, Outcome
from ferryman.sources.base import MoveTo, folder_inside
from ferryman.transports.local import fsync_path, unlink_if_exists

if TYPE_CHECKING:
    from ferryman.sources.folder.config import FolderSourceConfig


def dispose(config: FolderSourceConfig, flow: FlowContext, item: Item, outcome: Outcome,
            forget: Callable[[str], None]) -> None:
    """Keep, delete or move the original (and its done file) after `outcome`; `forget` drops it
    from what was offered.  Errors are raised: the engine journals them as the flow's problem."""
    disposal = config.after if outcome.succeeded else config.after_failure
    if disposal == "keep":
        return
    path = item.origin
    try:
        st = os.stat(path)
    except FileNotFoundError:
        forget(path)
        return
    if f"{path}|{st.st_size}|{st.st_mtime_ns}" != item.key:
        flow.log.warning("%s: %s changed after it was picked up; left in place so the new "
                         "version is processed", flow.flow, path)
        return
    done = path + config.done_suffix if config.ready == "done_file" else None
    if isinstance(disposal, MoveTo):
        folder = move_folder(disposal.move, item, path)
        moved = move_without_overwrite(path, folder)
        if done is not None and os.path.lexists(done):
            shutil.move(done, str(moved) + config.done_suffix)
        flow.log.debug("%s: moved %s to %s", flow.flow, path, moved)
    else:
        unlink_if_exists(path)
        if done is not None:
            unlink_if_exists(done)
        flow.log.debug("%s: deleted %s", flow.flow, path)
    forget(path)


def move_folder(template: str, item: Item, path: str) -> Path:
    """The folder `template` names for the original at `path` (relative to its watched folder)."""
    values = templates.fields_for(flow=item.flow, item=item.id, meta=item.meta, path=path)
    rendered = Path(templates.render_path(template, values)).expanduser()
    root = item.meta.get("dir") or os.path.dirname(path)
    folder = rendered if rendered.is_absolute() else Path(root) / rendered
    if os.path.abspath(folder) == os.path.dirname(path):
        raise PermanentError(f"the move folder {template!r} is the folder the file is in")
    return folder


def move_targets_inside(config: FolderSourceConfig, roots: list[str]) -> set[str]:
    """Relative folders (below a watched folder) that originals are moved to: never scanned."""
    return {inside for root in roots for move in config.move_folders()
            if (inside := folder_inside(root, os.path.expanduser(move))) is not None}


def move_without_overwrite(path: str, folder: Path) -> Path:
    """Move file `path` into `folder` (created), keeping its name unless taken: then ``name-1.ext``…

    Never overwrites: the new name is claimed with a hard link where the file
    system allows it, else by renaming only when the name is free.  Across
    file systems the file is copied (and fsynced) first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = os.path.basename(path)
    source = path
    copied = False
    if os.stat(path).st_dev != os.stat(folder).st_dev:
        source = str(folder / f".{name}.ferryman-move")
        shutil.copy2(path, source)
        fsync_path(source)
        copied = True
    for n in itertools.count():
        target = folder / templates.numbered(name, n)
        try:
            _claim(source, target)
        except FileExistsError:
            continue
        break
    if copied:
        unlink_if_exists(path)
    return target


def _claim(source: str, target: Path) -> None:
    """Give `source` the name `target`, raising FileExistsError when the name is taken."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        if os.path.lexists(target):  # no hard links here: check, then rename
            raise FileExistsError(target) from None
        os.rename(source, target)
        return
    os.unlink(source)
