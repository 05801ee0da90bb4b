"""The S3 transport against a real SeaweedFS: the shared contract plus S3's own promises."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ferryman.connections import S3Connection
from ferryman.errors import PermanentError, TransientError
from ferryman.transports import TRANSPORTS, TransportPool, parse_location
from ferryman.transports.s3 import S3Transport
from servers import seaweedfs as weed
from servers.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedServer
from transports.contract import MiB, TransportContract

seaweedfs = weed.seaweedfs
s3_bucket = weed.s3_bucket


def connection(server: SeaweedServer, **changes: object) -> S3Connection:
    raw: dict[str, object] = {
        "type": "s3", "endpoint": server.endpoint, "region": "us-east-1",
        "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "path_style": True, "timeout": "5s",
    }
    raw.update(changes)
    return S3Connection.model_validate(raw)


@pytest.fixture
def transport(seaweedfs: SeaweedServer) -> Iterator[S3Transport]:
    t = S3Transport(connection(seaweedfs), chunk_size=5 * MiB, concurrency=2)
    yield t
    t.close()


@pytest.fixture
def remote_root(s3_bucket: str) -> str:
    return f"{s3_bucket}/root"


class TestS3Contract(TransportContract):
    # Parts are read from the file in blocks, never held whole; each of the 2 workers holds
    # about 1 MiB blocks at a time (hashing, then botocore's payload signing over plain http).
    max_transfer_memory = 6 * MiB


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_registered_for_s3_urls(seaweedfs: SeaweedServer, tmp_path: Path,
                                s3_bucket: str) -> None:
    assert "s3" in TRANSPORTS
    pool = TransportPool({"store": connection(seaweedfs)})
    location = parse_location(f"s3://store/{s3_bucket}/in")
    try:
        with pool.open(location) as t:
            assert t.atomic_put
            t.put(write(tmp_path / "a", b"abc"), f"{location.path}/a.csv")
    finally:
        pool.close()
    body = seaweedfs.client().get_object(Bucket=s3_bucket, Key="in/a.csv")["Body"].read()
    assert body == b"abc"


def test_small_object_checksum_is_the_files_sha256(transport: S3Transport, s3_bucket: str,
                                                   tmp_path: Path) -> None:
    src = write(tmp_path / "a", os.urandom(1000))
    transport.put(src, f"{s3_bucket}/a")
    assert transport.checksum(f"{s3_bucket}/a") == hashlib.sha256(src.read_bytes()).hexdigest()


def test_multipart_upload_is_verified_with_a_composite_checksum(
        transport: S3Transport, seaweedfs: SeaweedServer, s3_bucket: str,
        tmp_path: Path) -> None:
    data = os.urandom(11 * MiB + 7)
    src = write(tmp_path / "big", data)
    transport.put(src, f"{s3_bucket}/big.bin")
    head = seaweedfs.client().head_object(Bucket=s3_bucket, Key="big.bin", ChecksumMode="ENABLED")
    parts = [data[i:i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    composite = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    assert head["ChecksumSHA256"] == f"{base64.b64encode(composite).decode()}-3"
    assert head["ContentLength"] == len(data)
    # A composite checksum is not the file's SHA-256: checksum() says it does not know.
    assert transport.checksum(f"{s3_bucket}/big.bin") is None
    uploads = seaweedfs.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert uploads == []


def test_storage_class_and_metadata(transport: S3Transport, seaweedfs: SeaweedServer,
                                    s3_bucket: str, tmp_path: Path) -> None:
    src = write(tmp_path / "a", b"x" * 100)
    transport.configure(storage_class="STANDARD_IA", metadata={"export-id": "42", "origin": "erp"})
    transport.put(src, f"{s3_bucket}/small")
    big = write(tmp_path / "b", os.urandom(6 * MiB))
    transport.put(big, f"{s3_bucket}/large")
    client = seaweedfs.client()
    for key in ("small", "large"):
        head = client.head_object(Bucket=s3_bucket, Key=key)
        assert head["Metadata"] == {"export-id": "42", "origin": "erp"}
        assert head["StorageClass"] == "STANDARD_IA"
    transport.configure()
    transport.put(src, f"{s3_bucket}/plain")
    assert client.head_object(Bucket=s3_bucket, Key="plain")["Metadata"] == {}


def test_stat_gives_etag_and_mtime(transport: S3Transport, s3_bucket: str, tmp_path: Path) -> None:
    transport.put(write(tmp_path / "a", b"hello"), f"/{s3_bucket}/x/a.txt")
    found = transport.stat(f"/{s3_bucket}/x/a.txt")
    assert found is not None
    assert found.etag == hashlib.md5(b"hello").hexdigest()
    assert found.mtime is not None and found.mtime > 0
    assert [f.path for f in transport.list(f"/{s3_bucket}/x")] == [f"/{s3_bucket}/x/a.txt"]


def test_list_is_paginated(transport: S3Transport, seaweedfs: SeaweedServer,
                           s3_bucket: str) -> None:
    names = {f"f{i:04d}" for i in range(1005)}
    client = seaweedfs.client()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: client.put_object(Bucket=s3_bucket, Key=f"many/{n}", Body=b"1"), names))
    listed = {f.path.rsplit("/", 1)[1] for f in transport.list(f"{s3_bucket}/many")}
    assert listed == names


def test_no_such_bucket_is_permanent(transport: S3Transport, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="no such bucket"):
        list(transport.list("no-such-bucket-here/x"))


def test_a_path_without_bucket_is_permanent(transport: S3Transport, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="names no bucket"):
        transport.put(write(tmp_path / "a", b"1"), "/")


@pytest.mark.parametrize("change", [{"secret_key": "wrong-secret"}, {"access_key": "AKNOBODY"}])
def test_wrong_keys_are_permanent_and_never_shown(seaweedfs: SeaweedServer, s3_bucket: str,
                                                  tmp_path: Path, change: dict[str, str]) -> None:
    t = S3Transport(connection(seaweedfs, **change))
    try:
        with pytest.raises(PermanentError) as caught:
            t.put(write(tmp_path / "a", b"1"), f"{s3_bucket}/a")
    finally:
        t.close()
    message = str(caught.value)
    assert "access key or secret key was refused" in message
    for secret in ("wrong-secret", "AKNOBODY", SECRET_KEY, ACCESS_KEY):
        assert secret not in message


def test_a_stopped_server_is_transient(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed-down"))
    server.start()
    t = S3Transport(connection(server), chunk_size=5 * MiB, concurrency=2)
    try:
        t.client.create_bucket(Bucket="down")
        t.put(write(tmp_path / "a", b"before"), "down/a")
        big = write(tmp_path / "big", os.urandom(40 * MiB))
        # Stop the server while the multipart upload is running.
        stopper = threading.Timer(0.05, server.stop)
        stopper.start()
        with pytest.raises(TransientError, match="s3: cannot put down/big"):
            t.put(big, "down/big")
        stopper.join()
        with pytest.raises(TransientError, match="s3: cannot stat"):
            t.stat("down/a")
        # It comes back on the same ports: the same transport works again, no partial object.
        server.start()
        assert t.stat("down/big") is None
        t.put(big, "down/big")
        found = t.stat("down/big")
        assert found is not None and found.size == 40 * MiB
    finally:
        t.close()
        server.stop()


def test_connection_check(seaweedfs: SeaweedServer, s3_bucket: str) -> None:
    from ferryman.probe import check_connection

    answer = check_connection("store", connection(seaweedfs))
    count = len(seaweedfs.client().list_buckets()["Buckets"])
    assert answer.startswith(f"{seaweedfs.endpoint}: {count} bucket(s): ")
    with pytest.raises(PermanentError, match="access key or secret key was refused"):
        check_connection("store", connection(seaweedfs, secret_key="nope-nope"))
