"""The ``s3`` source (the generic remote source over S3) and its fetch step, against SeaweedFS."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryman.connections import S3Connection
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome
from ferryman.sources import SOURCES
from ferryman.sources.remote import RemoteSource
from ferryman.steps import STEPS
from ferryman.steps.base import StepContext
from ferryman.transports import TransportPool
from servers import seaweedfs as weed
from servers.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedServer

seaweedfs = weed.seaweedfs
s3_bucket = weed.s3_bucket


@pytest.fixture
def flow(seaweedfs: SeaweedServer, tmp_path: Path) -> Iterator[FlowContext]:
    conn = S3Connection.model_validate({
        "type": "s3", "endpoint": seaweedfs.endpoint, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
        "path_style": True,
    })
    pool = TransportPool({"store": conn})
    yield FlowContext(flow="t", root=tmp_path, config_dir=tmp_path, connections={"store": conn},
                      transports=pool, journal=None)  # type: ignore[arg-type]
    pool.close()


def make(flow: FlowContext, bucket: str, **config: Any) -> RemoteSource[Any]:
    raw = {"type": "s3", "url": f"s3://store/{bucket}/in", "settle": "50ms", **config}
    cls = SOURCES["s3"]
    return cls(cls.Config.model_validate(raw), flow)  # type: ignore[return-value]


def item_of(candidate: Candidate) -> Item:
    return Item(id=uuid.uuid4().hex, flow="t", key=candidate.key, origin=candidate.origin,
                meta=dict(candidate.meta), files=[])


def test_scan_fetch_and_delete(seaweedfs: SeaweedServer, s3_bucket: str, flow: FlowContext,
                               tmp_path: Path) -> None:
    client = seaweedfs.client()
    data = os.urandom(200_000)
    client.put_object(Bucket=s3_bucket, Key="in/jane.doe@example.com_bmgf.csv", Body=data)
    client.put_object(Bucket=s3_bucket, Key="in/upload.csv.in_progress", Body=b"partial")
    client.put_object(Bucket=s3_bucket, Key="in/sub/deeper.csv", Body=b"not recursive")
    source = make(flow, s3_bucket, meta_from_name=r"(?P<to>.+)_(?P<db>[^_]+)\.csv$", after="delete")
    [found] = source.scan()
    etag = client.head_object(Bucket=s3_bucket, Key="in/jane.doe@example.com_bmgf.csv")["ETag"].strip('"')
    assert found.key == f"s3://store/{s3_bucket}/in/jane.doe@example.com_bmgf.csv|200000|{etag}"
    assert found.meta["to"] == "jane.doe@example.com" and found.meta["db"] == "bmgf"
    assert found.meta["etag"] == etag

    item = item_of(found)
    step = STEPS["fetch"](STEPS["fetch"].Config.model_validate({"type": "fetch"}), flow)
    work = tmp_path / "work"
    work.mkdir()
    result = step.run(item, StepContext(flow=flow, item=item, index=0, work_dir=work))
    assert result is not None and result.files is not None
    assert [f.read_bytes() for f in result.files] == [data]

    source.finalize(item, Outcome(succeeded=True))
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert sorted(keys) == ["in/sub/deeper.csv", "in/upload.csv.in_progress"]


def test_a_rewritten_object_is_a_new_key_even_with_the_same_size(
        seaweedfs: SeaweedServer, s3_bucket: str, flow: FlowContext) -> None:
    client = seaweedfs.client()
    client.put_object(Bucket=s3_bucket, Key="in/x.csv", Body=b"aaaa")
    before = make(flow, s3_bucket).scan()[0].key
    client.put_object(Bucket=s3_bucket, Key="in/x.csv", Body=b"bbbb")
    after = make(flow, s3_bucket).scan()[0].key
    assert before != after


def test_after_move(seaweedfs: SeaweedServer, s3_bucket: str, flow: FlowContext) -> None:
    client = seaweedfs.client()
    client.put_object(Bucket=s3_bucket, Key="in/a.csv", Body=b"first")
    source = make(flow, s3_bucket, after={"move": "archive/{now:%Y}"})
    source.finalize(item_of(source.scan()[0]), Outcome(succeeded=True))
    year = time.strftime("%Y")
    body = client.get_object(Bucket=s3_bucket, Key=f"in/archive/{year}/a.csv")["Body"].read()
    assert body == b"first"
    assert "Contents" not in client.list_objects_v2(Bucket=s3_bucket, Prefix="in/a.csv")
