"""1,000 small files to SFTP: ferryman's deliver step vs a plain paramiko loop over one connection.

Both talk to the same real OpenSSH sshd on 127.0.0.1 (started here, as the
tests do).  The baseline is what a hand-written script does: one
``SFTPClient`` and ``put(local, remote)`` per file.  Ferryman runs the
``deliver`` step for each file as its own item (stat the final name, write
``<name>.in_progress``, verify its size, rename) over a pooled connection.
Rounds alternate which goes first; the table gives the medians, and the median of
the per-round ratios is the figure least disturbed by other load.  ``BENCH_SMALL=1`` sends 200
files instead of 1,000.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import paramiko

from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.steps.base import StepContext
from ferryman.steps.deliver import DeliverConfig, DeliverStep
from ferryman.transports import TransportPool
from servers.sshd import SshServer

COUNT = 200 if os.environ.get("BENCH_SMALL") else 1000
SIZE = 4096
ROUNDS = 7


def paramiko_loop(server: SshServer, files: list[Path], out: Path) -> float:
    start = time.perf_counter()
    ssh = paramiko.Transport(("127.0.0.1", server.port))
    ssh.connect(username=server.user, pkey=paramiko.PKey.from_path(server.client_key))
    sftp = paramiko.SFTPClient.from_transport(ssh)
    assert sftp is not None
    for f in files:
        sftp.put(str(f), f"{out}/{f.name}")
    ssh.close()
    return time.perf_counter() - start


def ferryman_deliver(server: SshServer, files: list[Path], out: Path, work: Path) -> float:
    start = time.perf_counter()
    pool = TransportPool({"bench": server.connection()})
    flow = FlowContext(flow="bench", root=work, config_dir=work, connections={"bench": server.connection()},
                       transports=pool, journal=None)  # type: ignore[arg-type]
    step = DeliverStep(DeliverConfig.model_validate({"type": "deliver", "to": f"sftp://bench{out}"}), flow)
    for i, f in enumerate(files):
        item = Item(id=f"i{i}", flow="bench", key=str(f), origin=str(f), meta={}, files=[f])
        step.run(item, StepContext(flow=flow, item=item, index=0, work_dir=work))
    pool.close()
    return time.perf_counter() - start


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-sftp-"))
    try:
        server = SshServer(folder)
        server.start()
        src = folder / "src"
        src.mkdir()
        files = []
        for i in range(COUNT):
            path = src / f"export-{i:04d}.csv"
            path.write_bytes(os.urandom(SIZE))
            files.append(path)
        times: dict[str, list[float]] = {"paramiko": [], "ferryman": []}
        cpu: dict[str, list[float]] = {"paramiko": [], "ferryman": []}
        for r in range(ROUNDS):
            for name in ("paramiko", "ferryman") if r % 2 == 0 else ("ferryman", "paramiko"):
                out = folder / f"out-{name}-{r}"
                out.mkdir()
                started = time.process_time()
                if name == "paramiko":
                    times[name].append(paramiko_loop(server, files, out))
                else:
                    times[name].append(ferryman_deliver(server, files, out, folder))
                cpu[name].append(time.process_time() - started)
                assert len(os.listdir(out)) == COUNT
                shutil.rmtree(out)
        server.stop()
        base = statistics.median(times["paramiko"])
        ours = statistics.median(times["ferryman"])
        # Each round ran both back to back: the median of the per-round ratios is the least
        # disturbed by other load on the machine.
        paired = statistics.median(p / f for p, f in zip(times["paramiko"], times["ferryman"], strict=True))
        print(f"\n{COUNT} files of {SIZE} bytes to SFTP (OpenSSH on loopback), {ROUNDS} rounds\n")
        per_file = {k: 1000 * statistics.median(v) / COUNT for k, v in cpu.items()}
        print("| method | median s | files/s | throughput ratio | client CPU ms/file |")
        print("| --- | ---: | ---: | ---: | ---: |")
        print(f"| paramiko SFTPClient.put loop, one connection | {base:.2f} | {COUNT / base:.0f} | 1.00 | "
              f"{per_file['paramiko']:.2f} |")
        print(f"| ferryman deliver (temp name, verify, rename) | {ours:.2f} | {COUNT / ours:.0f} | "
              f"{base / ours:.2f} | {per_file['ferryman']:.2f} |")
        print(f"\nratio of medians {base / ours:.2f}; median of per-round ratios {paired:.2f} (target >= 0.9)")
        print("rounds (s):", {k: [round(t, 2) for t in v] for k, v in times.items()})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
