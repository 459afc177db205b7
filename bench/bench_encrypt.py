"""The encrypt step on realistic prepared rows: each compression on one part, then the step sequential vs parallel.

    uv run python bench/bench_encrypt.py [ROWS]      (default 1000000; parts of 250,000 rows)

Prints, for one 250k-row part (signed, AES-256): seconds and size with pgpy's own ZIP (what the step
did before issue 14: zlib level 6, run twice by pgpy), and with ours: none, zip and zlib at level 1,
zip at level 6. Then the step's core (build every part's CSV from the encrypted staging, sign, encrypt,
write) with one worker and with two, alternately, twice each. Compare figures from one sitting only.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
from timing import peak_rss_mb

from transfers.agreement import load_config
from transfers.devkit import synthetic
from transfers.settings import PROJECT_ROOT
from transfers.staging import Staging, new_staging_key

DAY = date(2026, 11, 23)
BATCH = 50_000
PART = 250_000


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process, and of its children that have ended (the pool's workers, once shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _pgpy_zip(plaintext: bytes, key, signer, dest: Path) -> int:
    """The encryption as it was before issue 14: pgpy compresses (ZIP, zlib level 6) as it serialises."""
    import pgpy
    from pgpy.constants import CompressionAlgorithm, HashAlgorithm, SymmetricKeyAlgorithm

    from transfers.crypto.pgpy_warnings import quiet_pgpy

    with quiet_pgpy():
        message = pgpy.PGPMessage.new(plaintext, format="b", compression=CompressionAlgorithm.ZIP)
        message |= signer.signing_key.sign(message, hash=HashAlgorithm.SHA512)
        data = bytes(key.encryption_key.encrypt(message, cipher=SymmetricKeyAlgorithm.AES256))
    dest.write_bytes(data)
    return len(data)


def main(rows: int) -> None:
    from transfers.crypto import encrypt_to_file, load_own_signing_key, load_recipient_key
    from transfers.devkit.gpg import GpgHome
    from transfers.privacy import apply_privacy
    from transfers.steps.encrypt_parts import Job, encrypt_all, plan_parts

    flow = load_config(PROJECT_ROOT / "config").flow("mash-referrals.A").flow
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        staging_key = new_staging_key()
        staging = Staging(work / "run", staging_key)

        def prepared():
            for i in range(0, rows, BATCH):
                frame = synthetic.referrals(min(BATCH, rows - i), DAY, seed=i)
                frame["referral_id"] = [f"R{i + j:08d}" for j in range(len(frame))]  # every row its own subject
                yield apply_privacy(frame, flow, key=b"k" * 32, logical_date=DAY)[0]

        staging.write_batches("prepared", prepared(), columns=flow.shared_fields)
        gpg = GpgHome(work / "gnupg")
        fpr = gpg.generate_key("Bench <bench@example.invalid>", algo="cv25519")
        gpg.export_public(fpr, work / "bench.asc")
        key = load_recipient_key(work / "bench.asc", fpr)
        signer_fpr = gpg.generate_key("Sender <sender@example.invalid>", algo="cv25519", encryption_subkey=False)
        signer = load_own_signing_key(gpg.export_secret(signer_fpr), signer_fpr)

        part = pd.concat(list(staging.read_batches("prepared"))[: PART // BATCH]).to_csv(index=False).encode()
        print(f"one part: {min(rows, PART):,} rows, {len(part) / 1e6:.1f} MB of CSV")
        out = work / "part.csv.pgp"
        for attempt in (1, 2):
            for label, compression, level in (("pgpy ZIP (before)", None, 6), ("none", "none", 1),
                                              ("zip level 1", "zip", 1), ("zlib level 1", "zlib", 1),
                                              ("zip level 6", "zip", 6)):
                start = time.perf_counter()
                if compression is None:
                    size = _pgpy_zip(part, key, signer, out)
                else:
                    size = encrypt_to_file(part, key, out, filename="part.csv", signer=signer,
                                           compression=compression, level=level).size
                seconds = time.perf_counter() - start
                print(f"  [{attempt}] {label:<20} {seconds:6.2f} s  {size / 1e6:6.1f} MB", flush=True)
        del part

        parts = plan_parts(staging.rows("prepared"), PART, "bench")
        print(f"the step: {rows:,} rows in {len(parts)} parts; wall and CPU seconds")

        def before(outbox: Path) -> int:
            """The step as it was: one part after another in this process, pgpy's ZIP."""
            from transfers.csv_escape import escape_frame
            from transfers.steps.encrypt_parts import _part_frames

            size = 0
            for one, frame in _part_frames(staging.read_batches("prepared"), tuple(parts), flow.shared_fields):
                if flow.csv.formula_escape:
                    frame = escape_frame(frame)
                plaintext = frame.to_csv(index=False, columns=flow.shared_fields).encode("utf-8")
                size += _pgpy_zip(plaintext, key, signer, outbox / one.name)
            return size

        def after(outbox: Path, workers: int) -> int:
            jobs = [Job(run_dir=staging.run_dir, staging_key=staging_key, columns=flow.shared_fields,
                        formula_escape=flow.csv.formula_escape,
                        parts=tuple(parts[len(parts) * i // workers: len(parts) * (i + 1) // workers]),
                        outbox=outbox, recipient_key_file=key.path, recipient_fingerprint=key.fingerprint,
                        recipient_armored=key.armored, signer_fingerprint=signer.fingerprint,
                        signer_armored=signer.armored, signer_passphrase=None, compression="zip", level=1)
                    for i in range(workers)]
            return sum(p["size"] for p in encrypt_all(jobs, lambda _part: None))

        for attempt in (1, 2):
            for label, run in (("before: 1 process, pgpy ZIP", before),
                               ("after: 1 worker, zip 1", lambda o: after(o, 1)),
                               ("after: 2 workers, zip 1", lambda o: after(o, 2))):
                outbox = work / f"outbox-{attempt}-{label[:12].replace(' ', '')}"
                outbox.mkdir()
                cpu = _cpu()
                start = time.perf_counter()
                size = run(outbox)
                seconds = time.perf_counter() - start
                own, workers = (b - a for a, b in zip(cpu, _cpu(), strict=True))
                # On a busy machine wall time measures the neighbours; the longer of the two CPU figures is
                # the wall time the step would take with a core each.
                print(f"  [{attempt}] {label:<28} {seconds:6.2f} s wall {own + workers:6.2f} s CPU "
                      f"(this process {own:5.2f}, workers {workers:5.2f})  {size / 1e6:6.1f} MB", flush=True)
    print(f"peak resident memory (this process) {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
