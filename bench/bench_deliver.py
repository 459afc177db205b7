"""SFTP delivery alone: ``deliver_file`` against ``sftp put`` of the same bytes to the same local sshd.

    uv run python bench/bench_deliver.py [MB] [--parts N] [--pairs N]   (default 45 MB in 4 parts, 5 pairs)

Starts a private OpenSSH ``sshd`` (``tests.support.sshd``), writes MB of random bytes (encrypted parts
do not compress) split into parts, as a 1M-row run's outbox holds, then alternately delivers them with
the project (one session for all parts, as the deliver step opens one; default modes: atomic upload,
read-back verification) and with one ``sftp -b`` batch (``put`` then ``rename`` each part, the floor an
admin would script), removing the delivered files between runs. Prints the seconds of each run, the
median and worst, and the ratio of medians. Compare figures from one sitting only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``tests.support.sshd``: run as a script, only bench/ is on the path
    sys.path.insert(0, str(ROOT))

from tests.support.sshd import SshServer, run_sshd  # noqa: E402
from transfers.delivery import deliver_file, open_sftp  # noqa: E402
from transfers.delivery.readahead import read_chunks  # noqa: E402


def _project(server: SshServer, parts: list[Path], verify: str) -> float:
    start = time.perf_counter()
    with open_sftp(server.target("inbound", verify=verify)) as session:
        receipts = [deliver_file(session, part, part.name) for part in parts]
    seconds = time.perf_counter() - start
    assert [(r.status, r.size) for r in receipts] == [("delivered", p.stat().st_size) for p in parts]
    return seconds


def _floor(server: SshServer, parts: list[Path], work: Path) -> float:
    key = work / "client_key"
    known = work / "known_hosts"
    batch = work / "batch"
    batch.write_text(
        "-mkdir inbound\n"
        + "".join(
            f"put {p} inbound/.{p.name}.partial\nrename inbound/.{p.name}.partial inbound/{p.name}\n" for p in parts
        )
    )
    start = time.perf_counter()
    subprocess.run(
        [
            "sftp",
            "-q",
            "-b",
            str(batch),
            "-i",
            str(key),
            "-P",
            str(server.port),
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"{server.username}@{server.host}",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def _read_backs(server: SshServer, part: Path, times: int) -> None:
    (server.root / "inbound").mkdir(exist_ok=True)
    (server.root / "inbound" / part.name).write_bytes(part.read_bytes())

    def prefetch(fh) -> None:
        digest = hashlib.sha256()
        fh.prefetch()
        while chunk := fh.read(32 * 1024):
            digest.update(chunk)

    def read_ahead(fh) -> None:
        digest = hashlib.sha256()
        for chunk in read_chunks(fh):
            digest.update(chunk)

    runs: dict[str, list[float]] = {"paramiko prefetch": [], "read_chunks": []}
    with open_sftp(server.target("inbound")) as session:
        for _ in range(times):
            for label, read in (("paramiko prefetch", prefetch), ("read_chunks", read_ahead)):
                start = time.perf_counter()
                with session.sftp.open(f"inbound/{part.name}", "rb") as fh:
                    read(fh)
                runs[label].append(time.perf_counter() - start)
    (server.root / "inbound" / part.name).unlink()
    print(f"read-back of one {part.stat().st_size / 1024 / 1024:.0f} MB part, {times} times each, alternately")
    for label, seconds in runs.items():
        median = statistics.median(seconds)
        slow = sum(s > 2 * median for s in seconds)
        print(
            f"{label:<21} median {median:6.3f} s   mean {statistics.mean(seconds):6.3f} s   "
            f"worst {max(seconds):6.3f} s   over twice the median: {slow}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mb", nargs="?", type=int, default=45)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--verify", default="read-back", choices=("read-back", "size", "receipt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, run_sshd(Path(tmp) / "sshd") as server:
        work = Path(tmp)
        parts = [work / f"part{i}.bin" for i in range(args.parts)]
        for part in parts:
            part.write_bytes(os.urandom(args.mb * 1024 * 1024 // args.parts))
        key = work / "client_key"
        key.write_text(server.client_private_key)
        key.chmod(0o600)
        (work / "known_hosts").write_text(f"[{server.host}]:{server.port} {server.host_key_line}\n")
        project: list[float] = []
        floor: list[float] = []
        for _ in range(args.pairs):
            for runs, run in (
                (project, lambda: _project(server, parts, args.verify)),
                (floor, lambda: _floor(server, parts, work)),
            ):
                runs.append(run())
                for part in parts:
                    (server.root / "inbound" / part.name).unlink()
        print(f"{args.mb} MB in {args.parts} parts, verify {args.verify}, {args.pairs} pairs, alternately")
        for label, runs in (("project deliver_file", project), ("sftp put + rename", floor)):
            print(
                f"{label:<21} {' '.join(f'{s:6.2f}' for s in runs)} s   median {statistics.median(runs):6.2f} s"
                f"   worst {max(runs):6.2f} s"
            )
        print(f"ratio                 {statistics.median(project) / statistics.median(floor):6.1f}x")
        _read_backs(server, parts[0], 25)


if __name__ == "__main__":
    main()
