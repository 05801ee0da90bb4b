"""The `SourceContract` for the ``s3`` source, against a real SeaweedFS S3 gateway (one per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ferryman.connections import S3Connection
from servers import seaweedfs as weed
from servers.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedServer
from sources.contract import Place, RemotePlace, SourceContract

seaweedfs = weed.seaweedfs
s3_bucket = weed.s3_bucket


class S3Place(RemotePlace):
    """Objects under ``BUCKET/in/``.  S3 sets LastModified itself (whole seconds), so ages are made
    by waiting between writes."""

    age_step: ClassVar[float] = 1.1

    def __init__(self, server: SeaweedServer, bucket: str, tmp_path: Path) -> None:
        conn = S3Connection.model_validate({
            "type": "s3", "endpoint": server.endpoint, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
            "path_style": True,
        })
        super().__init__("s3", conn, f"/{bucket}/in", tmp_path)
        self.client: Any = server.client()
        self.bucket = bucket

    def put(self, name: str, data: bytes, age: float | None = None) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"in/{name}", Body=data)

    def exists(self, name: str) -> bool:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"in/{name}")
        return any(o["Key"] == f"in/{name}" for o in listed.get("Contents", []))

    def remove(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"in/{name}")

    def rename(self, old: str, new: str) -> None:
        # S3 has no rename: the s3 transport's deliver copies, then deletes.
        self.client.copy_object(Bucket=self.bucket, Key=f"in/{new}",
                                CopySource={"Bucket": self.bucket, "Key": f"in/{old}"})
        self.remove(old)


@pytest.fixture
def place(seaweedfs: SeaweedServer, s3_bucket: str, tmp_path: Path) -> Iterator[Place]:
    prefix = S3Place(seaweedfs, s3_bucket, tmp_path)
    yield prefix
    prefix.close()


class TestS3SourceContract(SourceContract):
    pass
