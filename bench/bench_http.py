"""The PIExporter path: records/s through the whole flow, and peak memory on one 100 MB response.

1. 10,000 records of 20 fields, 3 of them RSA-2048 encrypted (PKCS#1 v1.5), in two deleteable
   forms: the real ``ferryman run --once`` (poll, raw backup, decrypt_fields with 2 worker
   processes, append_csv, one DELETE per record) against a plain Python loop doing the same in
   the same run (http.client, json, cryptography, csv.writer, one DELETE per record), each in its
   own process, against the same server.  Records/s, CPU per record (user + sys of the process
   and its children) and peak memory (max RSS).
2. One response of about 100 MB (no encrypted fields, delete off): peak memory of
   ``ferryman run --once`` against ``json.load`` of the same body (a process that only parses it).

Run: ``.venv/bin/python bench/bench_http.py`` (``BENCH_SMALL=1``: 2,000 records, a 20 MB body).
"""

from __future__ import annotations

import base64
import csv
import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SMALL = bool(os.environ.get("BENCH_SMALL"))
RECORDS = 2_000 if SMALL else 10_000
BIG_MB = 20 if SMALL else 100


def plain_loop(base_url: str, user: str, password: str, key_file: str, out: str) -> None:
    """PIExporter's loop, written plainly: what ferryman is measured against.  Prints a JSON line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
    assert isinstance(key, RSAPrivateKey)
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    start = time.perf_counter()

    def get(path: str) -> bytes:
        conn.request("GET", path, headers=auth)
        return conn.getresponse().read()

    count = 0
    for form in json.loads(get(parts.path)):
        name = form["name"]
        body = get(f"{parts.path}/{name}")
        with open(Path(out) / f"{name}_raw.json", "wb") as raw:
            raw.write(body)
            os.fsync(raw.fileno())
        entries = json.loads(body)
        with open(Path(out) / f"{name}.csv", "a", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(sorted(entries[0]))
            for entry in entries:
                for k, v in entry.items():
                    if k.endswith("RSA") and v:
                        entry[k] = key.decrypt(base64.b64decode(v), padding.PKCS1v15()).decode()
                writer.writerow([entry[k] for k in sorted(entry)])
                f.flush()
                conn.request("DELETE", f"{parts.path}/{name}/{entry['id']}", headers=auth)
                conn.getresponse().read()
                count += 1
            os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"records": count, "seconds": elapsed, "cpu": usage.ru_utime + usage.ru_stime,
                      "maxrss_kb": usage.ru_maxrss}))


def parse_only(path: str) -> None:
    """The baseline of part 2: json.load of the whole body."""
    start = time.perf_counter()
    with open(path, "rb") as f:
        data = json.load(f)
    print(json.dumps({"records": len(data), "seconds": time.perf_counter() - start,
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants (from /proc), KiB."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += parents.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (the process and its children), peak RSS of its process tree in
    KiB (sampled every 20 ms from /proc: a child's max RSS from wait4 would count the pages it
    shared with this big process between fork and exec), stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})})
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss_kb(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} exited {proc.returncode}:\n{text}\n{errors[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, peak, text


def config(folder: Path, server: object, delete: bool, workers: int, decrypt: bool) -> Path:
    from servers.piexporter import USER, PiServer

    assert isinstance(server, PiServer)
    decrypt_step = f"""
[[flows.pi.steps]]
type = "decrypt_fields"
key = {{ file = "{server.key_file}" }}
workers = {workers}
""" if decrypt else ""
    path = folder / "ferryman.toml"
    path.write_text(f"""
[ferryman]
root = "state"

[connections.pi]
type = "http"
base_url = "{server.base_url}"
auth = {{ basic = ["{USER}", {{ env = "BENCH_PI_PASSWORD" }}] }}
timeout = "120s"

[flows.pi.source]
type = "http"
connection = "pi"
collections = {{ list = "" }}
raw_dir = "raw_data"
delete = {str(delete).lower()}
batch = 500
{decrypt_step}
[[flows.pi.steps]]
type = "append_csv"
to = "csv"
""")
    return path


def fill(server: object, forms: list[str], count: int, encrypted: bool, filler: int = 0) -> None:
    from servers.piexporter import PiServer

    assert isinstance(server, PiServer)
    for form in forms:
        server.form(form)
    for n in range(count):
        fields = {f"field{k:02d}": f"value {n}-{k}" + ("x" * filler) for k in range(17)}
        if encrypted:
            fields.update({f"secret{k}RSA": f"secret {n}-{k}" for k in range(3)})
        else:
            fields.update({f"field{k}": f"plain {n}-{k}" for k in range(17, 20)})
        server.add(forms[n % len(forms)], **fields)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--loop":
        plain_loop(*sys.argv[2:7])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--parse":
        parse_only(sys.argv[2])
        return
    from servers.piexporter import PASSWORD, USER, PiServer

    ferryman = [sys.executable, "-m", "ferryman"]
    env = {"BENCH_PI_PASSWORD": PASSWORD}
    with tempfile.TemporaryDirectory(prefix="ferryman-bench-http-") as scratch:
        root = Path(scratch)
        print(f"1. {RECORDS:,} records x 20 fields (3 RSA-2048), two deleteable forms, one DELETE per record")
        rows = []
        for label in ("plain loop", "ferryman, 1 decrypt process", "ferryman, 2 decrypt processes"):
            folder = root / label.replace(" ", "_").replace(",", "")
            folder.mkdir()
            server = PiServer(folder)
            try:
                fill(server, ["intake", "followup"], RECORDS, encrypted=True)
                if label == "plain loop":
                    wall, cpu, rss, out = measured([sys.executable, __file__, "--loop", server.base_url, USER,
                                                    PASSWORD, str(server.key_file), str(folder)])
                    done = json.loads(out)["records"]
                else:
                    workers = 2 if "2" in label else 1
                    path = config(folder, server, delete=True, workers=workers, decrypt=True)
                    wall, cpu, rss, _ = measured([*ferryman, "run", "--once", "-c", str(path)], env)
                    done = sum(len(p.read_text().splitlines()) - 1 for p in (folder / "csv").glob("*.csv"))
                assert done == RECORDS, (label, done)
                assert server.held("intake") == [] and server.held("followup") == []
            finally:
                server.close()
            rows.append((label, RECORDS / wall, cpu / RECORDS * 1000, rss / 1024))
        base = rows[0][1]
        print(f"{'':32} {'records/s':>10} {'vs loop':>8} {'CPU ms/record':>14} {'peak MB':>8}")
        for label, rate, cpu_ms, peak in rows:
            print(f"{label:32} {rate:10.0f} {rate / base:7.2f}× {cpu_ms:14.2f} {peak:8.0f}")

        print(f"\n2. one response of about {BIG_MB} MB (no encrypted fields, delete off)")
        folder = root / "big"
        folder.mkdir()
        server = PiServer(folder)
        try:
            per = 25 * 20 + 60  # ≈ bytes per record in JSON
            count = BIG_MB * 1024 * 1024 // (per + 17 * 1)
            fill(server, ["big"], count, encrypted=False)
            body = folder / "body.json"
            body.write_text(json.dumps(server.held("big")))
            size_mb = body.stat().st_size / 1024 / 1024
            _, _, parse_rss, out = measured([sys.executable, __file__, "--parse", str(body)])
            path = config(folder, server, delete=False, workers=1, decrypt=False)
            wall, cpu, rss, _ = measured([*ferryman, "run", "--once", "-c", str(path)], env)
        finally:
            server.close()
        print(f"{'':32} {'body MB':>8} {'records':>9} {'peak MB':>8} {'records/s':>10}")
        print(f"{'json.load of the body':32} {size_mb:8.0f} {count:9,} {parse_rss / 1024:8.0f} {'':>10}")
        print(f"{'ferryman run --once':32} {size_mb:8.0f} {count:9,} {rss / 1024:8.0f} {count / wall:10.0f}")


if __name__ == "__main__":
    main()
