"""``s3``: objects dropped under an S3 prefix, polled (see `ferryman.sources.remote`).

The key of an object is ``s3://CONNECTION/bucket/key|size|ETag``: a rewritten
object has a new ETag, so it is a new item even when its size is the same.
``after = {move = …}`` copies then deletes (S3 has no rename).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ferryman.sources.remote import RemoteSource, RemoteSourceConfig


class S3SourceConfig(RemoteSourceConfig):
    """Objects under a bucket prefix, downloaded when complete, disposed of after success."""

    type: Literal["s3"] = Field(description="Objects in S3: url = 's3://CONNECTION/bucket/prefix'.")


class S3Source(RemoteSource[S3SourceConfig]):
    Config = S3SourceConfig
