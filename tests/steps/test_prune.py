"""``prune`` on a local folder, SeaweedFS (S3), sshd (SFTP) and pyftpdlib (FTP): retention, guards, faults."""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from ferryman.config import AnyStep
from ferryman.connections import ConnectionConfig, S3Connection
from ferryman.errors import PermanentError, TransientError
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.steps import STEPS, StepContext, StepResult
from ferryman.transports import TransportPool
from servers import seaweedfs as weed
from servers.ftp import FtpServer, ftp_server
from servers.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedServer
from servers.sshd import SshServer, sshd

seaweedfs, s3_bucket = weed.seaweedfs, weed.s3_bucket
__all__ = ["ftp_server", "s3_bucket", "seaweedfs", "sshd"]

NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
_ids = itertools.count(1)


def run(config: dict[str, Any], tmp: Path, connections: dict[str, ConnectionConfig] | None = None,
        pool: TransportPool | None = None, meta: dict[str, str] | None = None) -> StepResult:
    """Build the step from its raw config and run it once, as the engine does."""
    model = TypeAdapter(AnyStep).validate_python({"timezone": "UTC", **config})
    flow = FlowContext(flow="t", root=tmp / "root", config_dir=tmp, connections=connections or {},
                       transports=pool or TransportPool(connections or {}), journal=None)  # type: ignore[arg-type]
    step = STEPS[config["type"]](model, flow)
    item = Item(id=f"i{next(_ids)}", flow="t", key="k", origin="test", meta=dict(meta or {}), files=[])
    result = step.run(item, StepContext(flow=flow, item=item, index=0, work_dir=tmp / "work"))
    assert result is not None
    return result


def nightly(folder: Path, days: int, name: str = "db_{:%Y%m%d}.dump") -> list[str]:
    """One backup per night for `days` nights before NOW, its mtime its night; newest first."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for n in range(days):
        when = NOW - timedelta(days=n)
        path = folder / name.format(when)
        path.write_text(f"backup of {when:%Y-%m-%d}")
        os.utime(path, (when.timestamp(), when.timestamp()))
        names.append(path.name)
    return names


def left(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


PMT = {"type": "prune", "keep": {"daily": 7, "weekly": 5, "monthly": 12}, "max_delete": "100%"}


def test_local_gfs_by_mtime(tmp_path: Path) -> None:
    names = nightly(tmp_path / "bu", 120)
    done = run({**PMT, "path": str(tmp_path / "bu")}, tmp_path)
    kept = left(tmp_path / "bu")
    # 7 dailies (24 to 30 Nov), Sundays of 5 weeks, the last night of each of 4 months + the oldest
    assert {n for n in names[:7]} <= kept
    assert "db_20261122.dump" in kept and "db_20261115.dump" in kept  # Sundays (ISO weeks end on Sunday)
    assert "db_20261031.dump" in kept and "db_20260930.dump" in kept and "db_20260831.dump" in kept
    assert names[-1] in kept  # the oldest: monthly asks for 12 months, only 5 exist
    assert set(done.outputs["deleted"]) == set(names) - kept
    assert len(done.outputs["deleted"]) + len(kept) == 120
    assert done.outputs["kept"]["db_20261031.dump"] == "monthly 2026-10"
    assert done.outputs["kept"]["db_20261130.dump"] == "daily 2026-11-30, weekly 2026-W49, monthly 2026-11"


def test_dry_run_deletes_nothing_and_explains(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    names = nightly(tmp_path / "bu", 40)
    with caplog.at_level(logging.INFO, logger="ferryman"):
        dry = run({**PMT, "path": str(tmp_path / "bu"), "dry_run": True}, tmp_path)
    assert left(tmp_path / "bu") == set(names)
    assert dry.outputs["dry_run"] is True and "deleted" not in dry.outputs
    assert "keeps db_20261031.dump (monthly 2026-10)" in caplog.text
    assert f"would delete {dry.outputs['would_delete'][0]}" in caplog.text
    real = run({**PMT, "path": str(tmp_path / "bu")}, tmp_path)
    assert real.outputs["deleted"] == dry.outputs["would_delete"]
    assert real.outputs["kept"] == dry.outputs["kept"]


def test_name_times_and_names_that_do_not_parse(tmp_path: Path) -> None:
    folder = tmp_path / "bu"
    names = nightly(folder, 10, "pmt_{:%Y%m%d}.tar")
    for path in folder.iterdir():
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))  # every mtime today: only the names tell
    (folder / "pmt_latest.tar").write_text("x")
    config = {"type": "prune", "path": str(folder), "include": ["pmt_*.tar"], "keep": {"last": 3},
              "time_from_name": {"pattern": r"_(?P<ts>\d{8})\.tar$", "format": "%Y%m%d"}, "max_delete": 7}
    done = run(config, tmp_path)
    assert left(folder) == {*names[:3], "pmt_latest.tar"}
    assert done.outputs["unparsed"] == ["pmt_latest.tar"]
    assert done.outputs["kept"] == {names[0]: "last 1", names[1]: "last 2", names[2]: "last 3"}


def test_temporary_hidden_and_excluded_files_are_never_touched(tmp_path: Path) -> None:
    folder = tmp_path / "bu"
    nightly(folder, 5)
    old = (NOW - timedelta(days=400)).timestamp()
    for name in ("db_1.dump.in_progress", ".db_2.dump", "db_3.dump.part", "keep-me.dump"):
        (folder / name).write_text("x")
        os.utime(folder / name, (old, old))
    run({**PMT, "keep": {"last": 1}, "path": str(folder), "exclude": ["keep-*"]}, tmp_path)
    assert left(folder) == {"db_20261130.dump", "db_1.dump.in_progress", ".db_2.dump", "db_3.dump.part",
                            "keep-me.dump"}


def test_a_pattern_that_matches_nothing_fails(tmp_path: Path) -> None:
    nightly(tmp_path / "bu", 3)
    with pytest.raises(PermanentError, match=r"no file matches include = \['\*\.tar'\] \(3 files there\); "
                       "nothing deleted"):
        run({**PMT, "path": str(tmp_path / "bu"), "include": ["*.tar"]}, tmp_path)
    assert run({**PMT, "path": str(tmp_path / "bu"), "include": ["*.tar"], "allow_empty": True},
               tmp_path).outputs["matched"] == 0
    assert len(left(tmp_path / "bu")) == 3


def test_a_missing_folder_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"the listing failed, nothing deleted: cannot list .*nowhere: "
                       "No such file or directory"):
        run({**PMT, "path": str(tmp_path / "nowhere")}, tmp_path)


def test_max_delete_refuses_and_deletes_nothing(tmp_path: Path) -> None:
    """A pattern that catches every file in a busy folder (or a clock years ahead) would delete most."""
    names = nightly(tmp_path / "bu", 20)
    for config, message in [
        ({"keep": {"last": 1}}, r"would delete 19 of 20 matching files \(95%\), more than max_delete = 50%"),
        ({"keep": {"daily": 7}, "max_delete": 5}, r"would delete 13 of 20 matching files \(65%\), more than "
         "max_delete = 5"),
    ]:
        with pytest.raises(PermanentError, match=message):
            run({"type": "prune", "path": str(tmp_path / "bu"), **config}, tmp_path)
    assert left(tmp_path / "bu") == set(names)
    dry = run({"type": "prune", "path": str(tmp_path / "bu"), "keep": {"last": 1}, "dry_run": True}, tmp_path)
    assert "more than max_delete" in dry.outputs["refused"] and len(dry.outputs["would_delete"]) == 19


def test_templated_path(tmp_path: Path) -> None:
    nightly(tmp_path / "bu" / "pmt", 3)
    done = run({**PMT, "keep": {"last": 1}, "path": str(tmp_path / "bu" / "{meta.each}")}, tmp_path,
               meta={"each": "pmt"})
    assert len(done.outputs["deleted"]) == 2


@pytest.mark.parametrize("config, message", [
    ({"keep": {}}, "keep has no rule"),
    ({"keep": {"daily": -1}}, "greater than or equal to 0"),
    ({"keep": {"within": "5min"}}, "not a keep-within span"),
    ({"keep": {"daily": 1}, "max_delete": "150%"}, "neither a count"),
    ({"keep": {"daily": 1}, "max_delete": "lots"}, "neither a count"),
    ({"keep": {"daily": 1}, "time_from_name": {"pattern": r"\d+", "format": "%Y"}}, "group named ts"),
    ({"keep": {"daily": 1}, "timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"keep": {"daily": 1}, "path": "gopher://x/y"}, "unknown URL scheme"),
    ({"keep": {"dayly": 1}}, "dayly"),
])
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(AnyStep).validate_python({"type": "prune", "path": "/srv/bu", **config})


# ---- remote places ---------------------------------------------------------------------------

def s3_conn(server: SeaweedServer) -> S3Connection:
    return S3Connection.model_validate({"type": "s3", "endpoint": server.endpoint, "access_key": ACCESS_KEY,
                                        "secret_key": SECRET_KEY, "path_style": True})


BY_NAME = {"pattern": r"_(?P<ts>\d{8})\.dump$", "format": "%Y%m%d"}


def fill_bucket(server: SeaweedServer, bucket: str, days: int) -> list[str]:
    client = server.client()
    names = [f"db_{NOW - timedelta(days=n):%Y%m%d}.dump" for n in range(days)]
    for name in names:
        client.put_object(Bucket=bucket, Key=f"backups/{name}", Body=name.encode())
    client.put_object(Bucket=bucket, Key="other/db_20200101.dump", Body=b"not under the prefix")
    return names


def bucket_names(server: SeaweedServer, bucket: str, prefix: str = "backups/") -> set[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"].removeprefix(prefix) for page in pages for o in page.get("Contents", [])}


def test_s3_prefix(seaweedfs: SeaweedServer, s3_bucket: str, tmp_path: Path) -> None:
    names = fill_bucket(seaweedfs, s3_bucket, 40)
    done = run({**PMT, "path": f"s3://store/{s3_bucket}/backups/", "time_from_name": BY_NAME}, tmp_path,
               {"store": s3_conn(seaweedfs)})
    kept = bucket_names(seaweedfs, s3_bucket)
    assert set(done.outputs["deleted"]) == set(names) - kept and len(kept) == 40 - len(done.outputs["deleted"])
    assert set(names[:7]) <= kept and "db_20261031.dump" in kept
    assert bucket_names(seaweedfs, s3_bucket, "other/") == {"db_20200101.dump"}


def test_s3_listing_that_fails_half_way_deletes_nothing(seaweedfs: SeaweedServer, s3_bucket: str,
                                                        tmp_path: Path) -> None:
    """Pages of 5 keys; from the third page on, every request (botocore's retries too) loses its
    connection: the step must not act on the 10 names of 30 that it did see."""
    names = fill_bucket(seaweedfs, s3_bucket, 30)
    conns: dict[str, ConnectionConfig] = {"store": s3_conn(seaweedfs)}
    pool = TransportPool(conns)
    from ferryman.transports import parse_location

    with pool.open(parse_location(f"s3://store/{s3_bucket}")) as transport:
        events = transport.client.meta.events  # type: ignore[attr-defined]
        pages = itertools.count(1)

        def small_pages(params: dict[str, Any], **_: Any) -> None:
            params["MaxKeys"] = 5

        def lose_third(**_: Any) -> None:
            if next(pages) >= 3:
                from botocore.exceptions import ConnectionClosedError

                raise ConnectionClosedError(endpoint_url=seaweedfs.endpoint)

        events.register("provide-client-params.s3.ListObjectsV2", small_pages)
        events.register("before-send.s3.ListObjectsV2", lose_third)
    with pytest.raises(TransientError, match=f"prune s3://store/{s3_bucket}/backups: the listing failed, "
                       f"nothing deleted: s3: cannot list /{s3_bucket}/backups: Connection was closed"):
        run({**PMT, "path": f"s3://store/{s3_bucket}/backups/", "time_from_name": BY_NAME}, tmp_path, conns, pool)
    assert next(pages) > 3  # the first two pages were answered
    assert bucket_names(seaweedfs, s3_bucket) == set(names)


def test_sftp_folder(sshd: SshServer, tmp_path: Path) -> None:
    folder = tmp_path / "remote"  # sshd serves this machine's files: an absolute path is a remote one
    names = nightly(folder, 30)
    done = run({**PMT, "path": f"sftp://partner{folder}"}, tmp_path, {"partner": sshd.connection()})
    kept = left(folder)
    assert set(names[:7]) <= kept and set(done.outputs["deleted"]) == set(names) - kept
    assert done.outputs["place"] == f"sftp://partner/{str(folder).lstrip('/')}"


def test_ftp_folder(ftp_server: FtpServer, tmp_path: Path) -> None:
    sub = f"bu-{next(_ids)}-{os.getpid()}"
    names = nightly(ftp_server.root / sub, 30)
    done = run({**PMT, "path": f"ftp://ftp/{sub}"}, tmp_path, {"ftp": ftp_server.connection()})
    kept = left(ftp_server.root / sub)
    assert set(names[:7]) <= kept and set(done.outputs["deleted"]) == set(names) - kept


# ---- the dry run chooses what the real run deletes --------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 800), min_size=1, max_size=40),
       st.fixed_dictionaries({}, optional={"last": st.integers(1, 3), "daily": st.integers(1, 8),
                                           "weekly": st.integers(1, 5), "monthly": st.integers(1, 12)}))
def test_dry_run_and_real_run_choose_the_same(days: set[int], keep: dict[str, int]) -> None:
    keep = keep or {"last": 1}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bu"
        folder.mkdir()
        for day in days:
            when = (NOW - timedelta(days=day, hours=day % 5)).timestamp()
            (folder / f"b{day}").write_text("x")
            os.utime(folder / f"b{day}", (when, when))
        config = {"type": "prune", "path": str(folder), "keep": keep, "max_delete": "100%"}
        dry = run({**config, "dry_run": True}, Path(tmp))
        assert left(folder) == {f"b{d}" for d in days}
        real = run(config, Path(tmp))
        assert real.outputs["deleted"] == dry.outputs["would_delete"]
        assert left(folder) == set(dry.outputs["kept"])
        assert f"b{min(days)}" in left(folder)  # the newest


def test_culling_old_exports_is_prune_within(tmp_path: Path) -> None:
    """CIOC's cull_old_exports: files older than 30 days before the newest go; the rest stay."""
    names = nightly(tmp_path / "downloads", 45, "cic_{:%Y%m%d}.zip")
    done = run({"type": "prune", "path": str(tmp_path / "downloads"), "keep": {"within": "30d"}}, tmp_path)
    assert left(tmp_path / "downloads") == set(names[:30])
    assert done.outputs["kept"][names[29]] == "within 30d of the newest"


def test_deletions_refused_by_the_server_fail_clearly(ftp_server: FtpServer, tmp_path: Path) -> None:
    """An FTP account that may list but not delete: the item fails naming what was (not) deleted."""
    sub = f"bu-{next(_ids)}-{os.getpid()}"
    names = nightly(ftp_server.root / sub, 4)
    with pytest.raises(PermanentError, match=r"prune ftp://ftp/.*: stopped before deleting any of 3: "):
        run({**PMT, "keep": {"last": 1}, "path": f"ftp://ftp/{sub}"}, tmp_path,
            {"ftp": ftp_server.connection(user="reader")})
    assert left(ftp_server.root / sub) == set(names)
