"""S3 and S3-compatible stores (AWS, SeaweedFS, MinIO, Ceph …) through boto3.

Paths are ``bucket/key`` (a leading ``/`` is allowed: ``s3://CONN/bucket/key``
gives ``/bucket/key``).  Objects appear only when complete, so `atomic_put`
is true and ``deliver`` writes the final key directly.

Uploads above `chunk_size` are multipart: `concurrency` worker threads each
hash one part (SHA-256) and send it with its checksum, reading it from the
file in small blocks (`FileSlice`), so memory stays small whatever the file
and part sizes, and the store refuses a part whose bytes changed on the way
(``BadDigest``).  The
completed object's composite checksum (``<sha256 of part digests>-N``) is
compared with the one computed locally.  A single-part object's checksum is
the SHA-256 of its bytes, which `checksum` returns.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import urlsplit

from ferryman.connections import S3Connection
from ferryman.errors import PermanentError, TransientError, dns_failure, one_line, unresolved
from ferryman.secrets import mask
from ferryman.transports.base import RemoteFile, Transport
from ferryman.transports.local import os_errors

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
MAX_PARTS = 10_000
MIN_PART = 5 * MiB
DELETE_BATCH = 1000
"""Keys per DeleteObjects request (the S3 limit)."""
MAX_COPY = 5 * 1024 * MiB
"""Largest object `copy_object` can copy in one request."""

# Error codes that retrying cannot fix; any other 4xx is permanent too, 5xx transient.
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
               "InvalidClientTokenId", "AuthorizationHeaderMalformed"}
_TRANSIENT_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout",
                    "RequestTimeTooSkewed", "BadDigest", "Throttling", "ThrottlingException",
                    "OperationAborted", "TooManyRequests", "503", "500", "429"}


@contextmanager
def s3_errors(action: str, where: str, secrets: tuple[str, ...] = ()) -> Iterator[None]:
    """Map boto3/botocore (and local file) exceptions to `TransientError` / `PermanentError`.

    Messages name the action, the ``bucket/key`` and the store's error code,
    never the access or secret key.
    """
    from botocore import exceptions as bex

    try:
        yield
    except bex.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        text = mask(str(error.get("Message") or ""), list(secrets))
        detail = f"{code}: {text}" if text and text != code else code or f"HTTP {status}"
        if code in _AUTH_CODES:
            raise PermanentError(
                f"s3: cannot {action} {where}: the access key or secret key was refused ({code})"
            ) from None
        if code == "NoSuchBucket":
            raise PermanentError(f"s3: cannot {action} {where}: no such bucket") from None
        if code == "403":  # a HEAD answer has no body: wrong keys and missing rights look alike
            raise PermanentError(
                f"s3: cannot {action} {where}: access denied (HTTP 403: wrong access key or secret key, "
                "or no permission)"
            ) from None
        if code == "AccessDenied" or status == 403:
            raise PermanentError(f"s3: cannot {action} {where}: access denied ({detail})") from None
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            raise TransientError(f"s3: cannot {action} {where}: {detail}") from None
        raise PermanentError(f"s3: cannot {action} {where}: {detail}") from None
    except bex.SSLError as exc:
        raise PermanentError(
            f"s3: cannot {action} {where}: TLS failed ({one_line(exc)}); set ca_file for a private CA"
        ) from None
    except (bex.NoCredentialsError, bex.PartialCredentialsError) as exc:
        raise PermanentError(f"s3: cannot {action} {where}: {exc} (set access_key and secret_key)") from None
    except bex.EndpointConnectionError as exc:
        url = urlsplit(str(exc.kwargs.get("endpoint_url", "")))
        if (dns := dns_failure(exc)) is not None:
            raise TransientError(f"s3: cannot {action} {where}: {unresolved(url.hostname or '?', dns)}") from None
        raise TransientError(
            f"s3: cannot {action} {where}: could not connect to {url.scheme}://{url.netloc}"
        ) from None
    except (bex.ConnectionError, bex.HTTPClientError, bex.IncompleteReadError) as exc:
        raise TransientError(f"s3: cannot {action} {where}: {one_line(exc)}") from None
    except bex.ParamValidationError as exc:
        raise PermanentError(f"s3: cannot {action} {where}: {' '.join(str(exc).split())}") from None
    except OSError as exc:  # the local file (botocore's own errors are OSErrors too, so this comes last)
        with os_errors(f"s3: cannot {action}"):
            raise exc from None


def split_path(path: str) -> tuple[str, str]:
    """``"/bucket/a/b.csv"`` → ``("bucket", "a/b.csv")``."""
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        raise PermanentError(f"s3: {path!r} names no bucket; write s3://CONNECTION/bucket/prefix")
    return bucket, key


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class FileSlice(io.RawIOBase):
    """A read-only, seekable window on an open file, read with ``pread`` (threads share the fd).

    Multipart bodies are slices rather than bytes, so a part is never held in
    memory: botocore and the HTTP client read it in small blocks.
    """

    def __init__(self, fd: int, start: int, length: int) -> None:
        super().__init__()
        self._fd, self._start, self._length, self._pos = fd, start, length, 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = min(max(base + offset, 0), self._length)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._pos
        if size is None or size < 0 or size > left:
            size = left
        data = os.pread(self._fd, size, self._start + self._pos) if size else b""
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def sha256(self) -> bytes:
        """The slice's SHA-256, read in 1 MiB blocks (the position is left at the start)."""
        digest = hashlib.sha256()
        self.seek(0)
        while block := self.read(MiB):
            digest.update(block)
        self.seek(0)
        return digest.digest()


class S3Transport(Transport):
    """One boto3 client on one S3 connection.

    Put options (``storage_class``, ``metadata``) are set with `configure` and
    apply to every following `put` until the next `configure`; they can also
    be passed to `put` directly.
    """

    atomic_put: ClassVar[bool] = True

    def __init__(self, conn: S3Connection, *, chunk_size: int = 16 * MiB, concurrency: int = 4) -> None:
        import boto3
        from botocore.config import Config

        self.conn = conn
        self.chunk_size = max(chunk_size, MIN_PART)
        self.concurrency = max(1, concurrency)
        self._options: dict[str, Any] = {}
        self._secrets: tuple[str, ...] = ()
        with s3_errors("connect to", conn.endpoint or "AWS"):
            access = conn.access_key.reveal() if conn.access_key else None
            secret = conn.secret_key.reveal() if conn.secret_key else None
            self._secrets = tuple(s for s in (access, secret) if s)
            verify: bool | str = conn.ca_file if conn.ca_file and conn.verify else conn.verify
            self.client: S3Client = boto3.session.Session().client(
                "s3", endpoint_url=conn.endpoint, region_name=conn.region,
                aws_access_key_id=access, aws_secret_access_key=secret, verify=verify,
                config=Config(
                    # Every body we send carries its SHA-256 in a signed checksum header, so
                    # signing the payload again (botocore does over plain http) only costs a pass.
                    s3={"addressing_style": "path" if conn.path_style else "auto",
                        "payload_signing_enabled": False},
                    connect_timeout=conn.timeout, read_timeout=conn.timeout,
                    retries={"mode": "standard", "max_attempts": 3},
                    max_pool_connections=max(10, self.concurrency + 2),
                ),
            )

    def configure(self, *, storage_class: str | None = None, metadata: Mapping[str, str] | None = None) -> None:
        """Options for the following puts: storage class (``STANDARD_IA``, ``GLACIER`` …) and user metadata."""
        self._options = {}
        if storage_class:
            self._options["StorageClass"] = storage_class
        if metadata:
            self._options["Metadata"] = {str(k): str(v) for k, v in metadata.items()}

    @contextmanager
    def errors(self, action: str, where: str) -> Iterator[None]:
        """`s3_errors` with this connection's keys masked."""
        with s3_errors(action, where, self._secrets):
            yield

    def put(self, local: Path, path: str, *, storage_class: str | None = None,
            metadata: Mapping[str, str] | None = None) -> None:
        bucket, key = split_path(path)
        options = dict(self._options)
        if storage_class:
            options["StorageClass"] = storage_class
        if metadata:
            options["Metadata"] = {str(k): str(v) for k, v in metadata.items()}
        with self.errors("put", path), open(local, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= self.chunk_size:
                body = FileSlice(f.fileno(), 0, size)
                expected = _b64(body.sha256())
                answer = self.client.put_object(Bucket=bucket, Key=key, Body=cast(IO[bytes], body),
                                                ChecksumSHA256=expected, **options)
            else:
                expected, answer = self._multipart(f.fileno(), size, bucket, key, options)
        stored = answer.get("ChecksumSHA256")
        if stored is not None and stored != expected:
            self.remove(path)
            raise TransientError(f"s3: {path}: the stored checksum {stored} differs from the local {expected}")

    def _multipart(self, fd: int, size: int, bucket: str, key: str,
                   options: dict[str, Any]) -> tuple[str, Any]:
        """Upload `fd` in parts; returns the expected composite checksum and the completion answer."""
        part_size = max(self.chunk_size, -(-size // MAX_PARTS))
        count = -(-size // part_size)
        upload = self.client.create_multipart_upload(
            Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", **options
        )["UploadId"]
        digests: list[bytes] = [b""] * count
        etags: list[str] = [""] * count
        failed = threading.Event()

        def send(index: int) -> None:
            if failed.is_set():
                return
            part = FileSlice(fd, index * part_size, min(part_size, size - index * part_size))
            digest = part.sha256()
            answer = self.client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=index + 1, Body=cast(IO[bytes], part),
                ChecksumSHA256=_b64(digest),
            )
            digests[index], etags[index] = digest, answer["ETag"]

        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-part") as pool:
                futures = [pool.submit(send, index) for index in range(count)]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                if any(f.exception() for f in done):
                    failed.set()
                for future in futures:
                    future.result()
            answer = self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload,
                MultipartUpload={"Parts": [
                    {"PartNumber": i + 1, "ETag": etags[i], "ChecksumSHA256": _b64(digests[i])}
                    for i in range(count)
                ]},
            )
        except BaseException:
            failed.set()
            self._abort(bucket, key, upload)
            raise
        return f"{_b64(hashlib.sha256(b''.join(digests)).digest())}-{count}", answer

    def _abort(self, bucket: str, key: str, upload: str) -> None:
        """Drop the parts of a failed upload (best effort: the store may be the thing that failed)."""
        with contextlib.suppress(Exception):  # the original error is the one to report
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)

    def get(self, path: str, local: Path) -> None:
        bucket, key = split_path(path)
        with self.errors("get", path):
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                with open(local, "wb") as out:
                    for chunk in body.iter_chunks(MiB):
                        out.write(chunk)
            finally:
                body.close()

    def rename(self, src: str, dst: str) -> None:
        """Copy then delete: not atomic (``deliver`` never needs it, as puts are atomic)."""
        src_bucket, src_key = split_path(src)
        dst_bucket, dst_key = split_path(dst)
        with self.errors("rename", f"{src} to {dst}"):
            source: Any = {"Bucket": src_bucket, "Key": src_key}
            head = self.client.head_object(Bucket=src_bucket, Key=src_key)
            if head["ContentLength"] <= MAX_COPY:
                self.client.copy_object(Bucket=dst_bucket, Key=dst_key, CopySource=source)
            else:
                from boto3.s3.transfer import TransferConfig

                self.client.copy(source, dst_bucket, dst_key, Config=TransferConfig(
                    multipart_chunksize=max(self.chunk_size, 64 * MiB), max_concurrency=self.concurrency))
            self.client.delete_object(Bucket=src_bucket, Key=src_key)

    def remove(self, path: str) -> None:
        bucket, key = split_path(path)
        with self.errors("delete", path):
            self.client.delete_object(Bucket=bucket, Key=key)

    def remove_many(self, paths: Sequence[str]) -> Iterator[str]:
        """Batched: one DeleteObjects request per 1,000 keys of a bucket; a key the store reports
        it could not delete fails the batch (the keys it did delete are yielded first)."""
        batch: list[str] = []
        for path in paths:
            if batch and (len(batch) == DELETE_BATCH or split_path(batch[0])[0] != split_path(path)[0]):
                yield from self._delete_batch(batch)
                batch = []
            batch.append(path)
        if batch:
            yield from self._delete_batch(batch)

    def _delete_batch(self, paths: list[str]) -> Iterator[str]:
        bucket = split_path(paths[0])[0]
        keys = {split_path(p)[1]: p for p in paths}
        with self.errors("delete", f"{len(paths)} objects in {bucket}"):
            answer = self.client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        failed = {e.get("Key", ""): e for e in answer.get("Errors", [])}
        yield from (path for key, path in keys.items() if key not in failed)
        if failed:
            key, error = next(iter(failed.items()))
            raise PermanentError(f"s3: cannot delete {keys.get(key, key)}: {error.get('Code', '')} "
                                 f"{error.get('Message', '')}".rstrip()
                                 + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))

    def _head(self, path: str, **extra: Any) -> Any | None:
        from botocore.exceptions import ClientError

        bucket, key = split_path(path)
        if not key:
            return None
        with self.errors("stat", path):
            try:
                return self.client.head_object(Bucket=bucket, Key=key, **extra)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

    def stat(self, path: str) -> RemoteFile | None:
        head = self._head(path)
        if head is None:
            return None
        return RemoteFile(path, int(head["ContentLength"]), head["LastModified"].timestamp(),
                          str(head.get("ETag", "")).strip('"') or None)

    def list(self, path: str, recursive: bool = False) -> Iterator[RemoteFile]:
        """Objects under the "folder" `path` (``bucket/dir`` lists ``dir/…``), paginated."""
        bucket, key = split_path(path)
        prefix = key if not key or key.endswith("/") else key + "/"
        lead = "/" if path.startswith("/") else ""
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if not recursive:
            args["Delimiter"] = "/"
        with self.errors("list", path):
            for page in self.client.get_paginator("list_objects_v2").paginate(**args):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):
                        continue  # a "folder" marker made by consoles
                    yield RemoteFile(f"{lead}{bucket}/{obj['Key']}", int(obj["Size"]),
                                     obj["LastModified"].timestamp(), obj.get("ETag", "").strip('"') or None)

    def makedirs(self, path: str) -> None:
        """Nothing to do: S3 has no folders."""

    def checksum(self, path: str, algorithm: str = "sha256") -> str | None:
        """The SHA-256 the store recorded, for objects uploaded in one part (multipart has none)."""
        if algorithm != "sha256":
            return None
        head = self._head(path, ChecksumMode="ENABLED")
        value = head.get("ChecksumSHA256") if head else None
        if not value or "-" in value:
            return None
        return base64.b64decode(value).hex()

    def close(self) -> None:
        self.client.close()


def open_s3(conn: object) -> Transport:
    """The `TRANSPORTS` factory for ``s3://``."""
    if not isinstance(conn, S3Connection):
        raise PermanentError("s3:// needs a connection of type 's3'")
    return S3Transport(conn)


__all__ = ["S3Transport", "open_s3", "s3_errors", "split_path"]
