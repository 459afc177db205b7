"""Verification: recompute the chain and compare it with every head recorded outside it.

A chain cut at the end still verifies on its own, so the heads kept elsewhere
(the anchor file, the external anchor, archived manifests) must each still be in
the chain with the same hash. Problems name the entry seq or the anchor, a line
each, capped so a rewritten ledger does not produce a million lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transfers.ledger import guards
from transfers.ledger.anchor import FileAnchor, S3Anchor, read_head_file
from transfers.ledger.chain import GENESIS_HASH, Entry, VerifyReport
from transfers.ledger.store import Store

_MAX_PROBLEMS = 200


def verify(store: Store, *, anchor_path: Path | None, external_anchor: FileAnchor | S3Anchor | None,
           heads: Iterable[tuple] = ()) -> VerifyReport:
    """See ``Ledger.verify``."""
    report = VerifyReport()

    def problem(text: str) -> None:
        if len(report.problems) < _MAX_PROBLEMS:
            report.problems.append(text)
        elif len(report.problems) == _MAX_PROBLEMS:
            report.problems.append("... further problems not listed")

    # The anchor is read before the chain: an append during verify then only makes
    # the table longer than the anchor, which is fine, never shorter.
    anchor = read_head_file(anchor_path, problem, store.count)
    claims: dict[int, list[tuple[str, str, str]]] = {}  # seq -> [(hash, label, source)]
    if anchor is not None:
        claims.setdefault(anchor[0], []).append((anchor[1], "", "its anchor"))
    for seq, digest, *where in heads:
        label = where[0] if where else ""
        claims.setdefault(int(seq), []).append((str(digest), label, where[1] if len(where) > 1 else label))
    external = None
    if external_anchor is not None:
        external = external_anchor.heads(problem)
        for seq, digest, label, source in external:
            claims.setdefault(seq, []).append((digest, label, source))
    mismatched: dict[str, list[str]] = {}  # source -> problem lines, the first one shown
    with store.errors("verify"):
        for name in guards.missing(store):
            problem(f"append-only trigger {name} on {store.display} is missing or disabled "
                    f"(UPDATE/DELETE are no longer refused): investigate, then call install_guards()")
        prev: Entry | None = None
        for entry in store.pages([]):
            report.checked += 1
            want_seq = prev.seq + 1 if prev else 1
            if entry.seq != want_seq:
                problem(f"entry {entry.seq}: follows entry {want_seq - 1}; entries {want_seq}..{entry.seq - 1} "
                        f"are missing (deleted?)")
            want_prev = prev.hash if prev else GENESIS_HASH
            if entry.prev_hash != want_prev:
                problem(f"entry {entry.seq}: prev_hash does not link to the entry before it "
                        f"(an entry before it was removed, inserted or rewritten?)")
            if entry.hash != entry.expected_hash():
                problem(f"entry {entry.seq}: hash does not match its contents (edited after it was written?)")
            for digest, label, source in claims.get(entry.seq, ()):
                if digest != entry.hash:
                    kept = f"the one in {label}" if label else "the one anchored outside the ledger"
                    mismatched.setdefault(source, []).append(
                        f"entry {entry.seq}: hash differs from {kept} (the ledger was rewritten from here on?)")
            prev = entry
        report.head = prev
    for lines in mismatched.values():
        more = f" (and {len(lines) - 1} more head(s) from the same place)" if len(lines) > 1 else ""
        problem(lines[0] + more)
    last = prev.seq if prev else 0
    furthest: dict[str, tuple[int, str]] = {}  # source -> the highest head beyond the end
    for seq in sorted(s for s in claims if s > last):
        for _digest, label, source in claims[seq]:
            furthest[source or "a recorded head"] = (seq, label)
    for source, (seq, label) in furthest.items():
        problem(f"ledger ends at entry {last} but {label or source} says {seq} (entries cut off the end?)")
    if external is not None and not external and last and external_anchor is not None:
        problem(f"{external_anchor.name} holds no head but the ledger has {last} entries "
                f"(deleted, or never written: check the anchor's place and the append log)")
    return report
