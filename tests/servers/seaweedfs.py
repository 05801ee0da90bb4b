"""SeaweedFS (`weed mini`), a real S3-compatible server on 127.0.0.1, per TESTING.md.

`SeaweedServer` starts one `weed mini` in a temp folder on free ports and can
be stopped and started again on the same ports and data (for fault tests).
The `seaweedfs` fixture is session-scoped; `s3_bucket` gives each test a fresh
bucket.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import free_port, require_binary

ACCESS_KEY = "AKTEST"
SECRET_KEY = "SKTEST"
REGION = "us-east-1"


class SeaweedServer:
    """One `weed mini` process; `endpoint` is its S3 URL."""

    def __init__(self, folder: Path) -> None:
        self.binary = require_binary("weed", str(Path(sys.executable).parent / "weed"))
        self.folder = folder
        self.ports = [free_port() for _ in range(10)]
        self.process: subprocess.Popen[bytes] | None = None
        (folder / "s3.json").write_text(json.dumps({"identities": [{
            "name": "tester",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))

    @property
    def s3_port(self) -> int:
        return self.ports[6]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def command(self) -> list[str]:
        d, p = str(self.folder), self.ports
        return [
            self.binary, f"-logdir={d}", "mini", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-master.port={p[0]}", f"-master.port.grpc={p[1]}",
            f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
            f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}", f"-filer.localSocket={d}/filer.sock",
            f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}", f"-s3.localSocket={d}/s3.sock",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={d}/s3.json",
            "-webdav=false", "-admin.ui=false", f"-admin.port={p[8]}", f"-admin.port.grpc={p[9]}",
        ]

    def client(self, **kwargs: Any) -> Any:
        """A plain boto3 S3 client for this server (for test setup and assertions)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=kwargs.pop("access_key", ACCESS_KEY),
            aws_secret_access_key=kwargs.pop("secret_key", SECRET_KEY),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                          connect_timeout=2, read_timeout=30),
        )

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.folder / "weed.out", "ab")  # noqa: SIM115 - kept open by the child
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.folder)
        log.close()
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = (self.folder / "weed.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed mini exited with {self.process.returncode}:\n{tail}")
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("weed mini did not answer list_buckets in time") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, 5 s grace, then SIGKILL; remove the grpc sockets it leaves in /tmp."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for port in self.ports:
            for sock in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(sock)

    def restart(self) -> None:
        self.stop()
        self.start()


_shared: list[SeaweedServer] = []
_users = 0


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One server for the whole session, even when several test modules import this fixture."""
    global _users
    if not _shared:
        server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
        server.start()
        _shared.append(server)
    _users += 1
    try:
        yield _shared[0]
    finally:
        _users -= 1
        if _users == 0:
            _shared.pop().stop()


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedServer) -> str:
    """A new, empty bucket for one test."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    seaweedfs.client().create_bucket(Bucket=name)
    return name
