"""SFTP delivery alone: ``deliver_file`` against ``sftp put`` of the same bytes to the same local sshd.

    uv run python bench/bench_deliver.py [MB] [--pairs N]      (default 45 MB, 3 pairs)

Starts a private OpenSSH ``sshd`` (``tests.support.sshd``), writes MB of random bytes (encrypted parts
do not compress), then alternately delivers them with the project (one session per delivery, as a run
opens one, default modes: atomic upload, read-back verification) and with ``sftp -b`` (``put`` then
``rename``, the floor an admin would script), removing the delivered files between runs. Prints the
seconds of each and the ratio. Compare figures from one sitting only.
"""

from __future__ import annotations

import argparse
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


def _project(server: SshServer, source: Path, verify: str) -> float:
    start = time.perf_counter()
    with open_sftp(server.target("inbound", verify=verify)) as session:
        receipt = deliver_file(session, source, "part.bin")
    seconds = time.perf_counter() - start
    assert receipt.status == "delivered" and receipt.size == source.stat().st_size
    return seconds


def _floor(server: SshServer, source: Path, work: Path) -> float:
    key = work / "client_key"
    known = work / "known_hosts"
    batch = work / "batch"
    batch.write_text(f"-mkdir inbound\nput {source} inbound/.part.bin.partial\nrename inbound/.part.bin.partial "
                     "inbound/part.bin\n")
    start = time.perf_counter()
    subprocess.run(
        ["sftp", "-q", "-b", str(batch), "-i", str(key), "-P", str(server.port), "-o", f"UserKnownHostsFile={known}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{server.username}@{server.host}"],
        check=True, capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mb", nargs="?", type=int, default=45)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--verify", default="read-back", choices=("read-back", "size", "receipt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, run_sshd(Path(tmp) / "sshd") as server:
        work = Path(tmp)
        source = work / "part.bin"
        with source.open("wb") as fh:
            for _ in range(args.mb):
                fh.write(os.urandom(1024 * 1024))
        key = work / "client_key"
        key.write_text(server.client_private_key)
        key.chmod(0o600)
        (work / "known_hosts").write_text(f"[{server.host}]:{server.port} {server.host_key_line}\n")
        delivered = server.root / "inbound" / "part.bin"
        project, floor = [], []
        for _ in range(args.pairs):
            project.append(_project(server, source, args.verify))
            delivered.unlink()
            floor.append(_floor(server, source, work))
            delivered.unlink()
        print(f"{args.mb} MB, verify {args.verify}, {args.pairs} pairs, alternately")
        print(f"project deliver_file  {' '.join(f'{s:6.2f}' for s in project)} s   median {statistics.median(project):6.2f} s")
        print(f"sftp put + rename     {' '.join(f'{s:6.2f}' for s in floor)} s   median {statistics.median(floor):6.2f} s")
        print(f"ratio                 {statistics.median(project) / statistics.median(floor):6.1f}x")


if __name__ == "__main__":
    main()
