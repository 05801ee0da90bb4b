"""1 GiB upload to SeaweedFS: ferryman's ``deliver`` step vs boto3's own ``upload_file``.

Each upload runs in its own subprocess so its peak memory (VmHWM) is its own;
the two alternate, ``ROUNDS`` times each, and the table gives medians.  Goals
(issue 4): throughput ratio >= 0.9, deliver's peak RSS <= 150 MB.

    .venv/bin/python bench/bench_s3.py            # 1 GiB, 3 rounds
    BENCH_SMALL=1 .venv/bin/python bench/bench_s3.py   # 128 MiB, quick check
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

MiB = 1024 * 1024
SIZE = (128 if os.environ.get("BENCH_SMALL") else 1024) * MiB
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(kind: str, endpoint: str, bucket: str, path: str) -> None:
    """One upload, timed; prints JSON {seconds, peak_mb}."""
    if kind == "boto3":
        import boto3
        from botocore.config import Config

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="AKTEST", aws_secret_access_key="SKTEST",
                              config=Config(s3={"addressing_style": "path"}))
        start = time.perf_counter()
        client.upload_file(path, bucket, "boto3/big.bin")
        seconds = time.perf_counter() - start
    else:
        from ferryman.connections import S3Connection
        from ferryman.flow import FlowContext
        from ferryman.item import Item
        from ferryman.steps.base import StepContext
        from ferryman.steps.deliver import DeliverConfig, DeliverStep
        from ferryman.transports import TransportPool

        conn = S3Connection.model_validate({
            "type": "s3", "endpoint": endpoint, "access_key": "AKTEST", "secret_key": "SKTEST",
            "path_style": True,
        })
        work = Path(tempfile.mkdtemp())
        pool = TransportPool({"store": conn})
        flow = FlowContext(flow="bench", root=work, config_dir=work, connections={"store": conn},
                           transports=pool, journal=None)  # type: ignore[arg-type]
        step = DeliverStep(DeliverConfig.model_validate({"type": "deliver", "to": f"s3://store/{bucket}/ferryman"}),
                           flow)
        item = Item(id="1", flow="bench", key="k", origin=path, meta={}, files=[Path(path)])
        start = time.perf_counter()
        step.run(item, StepContext(flow=flow, item=item, index=0, work_dir=work))
        seconds = time.perf_counter() - start
        pool.close()
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb()}))


def run_child(kind: str, endpoint: str, bucket: str, path: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", kind, endpoint, bucket, str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} upload failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    from servers.seaweedfs import SeaweedServer

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "big.bin"
        with open(source, "wb") as f:
            block = os.urandom(MiB)
            for i in range(SIZE // MiB):
                f.write(block[i % 251:] + block[: i % 251])  # distinct blocks, cheap to make
        (folder / "weed").mkdir()
        server = SeaweedServer(folder / "weed")
        server.start()
        try:
            client = server.client()
            client.create_bucket(Bucket="bench")
            results: dict[str, list[dict[str, float]]] = {"boto3": [], "deliver": []}
            for _ in range(ROUNDS):
                for kind in ("boto3", "deliver"):
                    results[kind].append(run_child(kind, server.endpoint, "bench", source))
                    prefix = "boto3/" if kind == "boto3" else "ferryman/"
                    client.delete_object(Bucket="bench", Key=prefix + "big.bin")
        finally:
            server.stop()

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    size_mb = SIZE / MiB
    rows = []
    for kind, label in (("boto3", "boto3 upload_file (baseline)"), ("deliver", "ferryman deliver")):
        seconds = median(kind, "seconds")
        rows.append((label, seconds, size_mb / seconds, median(kind, "peak_mb")))
    ratio = rows[0][1] / rows[1][1]
    print(f"\n### S3 upload of {size_mb:.0f} MiB to SeaweedFS (median of {ROUNDS} runs each)\n")
    print("| upload | seconds | MiB/s | peak RSS (MB) |")
    print("| --- | ---: | ---: | ---: |")
    for label, seconds, speed, peak in rows:
        print(f"| {label} | {seconds:.2f} | {speed:.0f} | {peak:.0f} |")
    print(f"\nthroughput ratio deliver / boto3 = **{ratio:.2f}** (goal >= 0.9); "
          f"deliver peak RSS {rows[1][3]:.0f} MB (goal <= 150 MB)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
    else:
        main()
