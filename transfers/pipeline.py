"""One flow run, (flow, logical date), as a sequence of steps.

Each step is a plain function taking a :class:`FlowRun` plus the resolved
credentials it needs, and returning a small JSON-able dict (counts, names,
hashes) — what a DAG task may put in XCom. The DAG runs them as separate tasks
so the grid shows which stage failed; :func:`run_flow` runs them in one go for
the CLI. Personal data passes between steps only as encrypted staging files.

Re-running a (flow, date) is safe: a recipient already in the ledger is not
sent to again, the encrypted outbox of a run is reused rather than re-made (a
new encryption would be a different file under the same name), and a file the
recipient already holds is recognised by its hash and recorded once.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pandas as pd

from transfers.agreement import Recipient, check_live
from transfers.connections import ConnInfo
from transfers.errors import QualityBlocked, StateError
from transfers.files import private_dir, write_atomic
from transfers.flowrun import FlowRun, Resolvers  # re-exported: callers import them from here too
from transfers.logs import get_logger, run_log

log = get_logger(__name__)


# --------------------------------------------------------------------------- steps


def check(run: FlowRun, ledger) -> dict:  # noqa: ANN001
    """Refuse to start unless the agreement is live; say who still needs the data."""
    from transfers.retention.running import mark_running

    check_live(run.ref.agreement, run.config.protocol, run.today)
    pending = [r.partner for r in run.ref.flow.to if ledger.find(run.disclosure_key(r)) is None]
    if pending:
        # Until cleanup, a purge keeps its hands off this (flow, date): the outbox is reused on a retry.
        # Only when there is work: the DAG short-circuits otherwise and may skip its cleanup.
        mark_running(run.settings.home, run.ref.agreement.id, run.ref.flow.id, run.ds)
    log.info("agreement live", **run._ctx(pending=pending))
    return {"live": True, "pending": pending}


def extract(run: FlowRun, conn: ConnInfo) -> dict:
    """Read the source into encrypted staging batches."""
    from transfers.sources import extract as read_source

    batches = read_source(run.ref.flow.source, conn, config_dir=run.config.root, logical_date=run.logical_date)
    counts = run.staging.write_batches("extract", batches)
    log.info("extracted", **run._ctx(rows=counts["rows"], batches=counts["parts"]))
    return {"rows": counts["rows"], "batches": counts["parts"], "columns": len(counts["columns"])}


def assess(run: FlowRun, ledger) -> dict:  # noqa: ANN001
    """Check the six characteristics, write the data owner's report, apply the policy."""
    from transfers.quality import check_quality
    from transfers.quality.history import recent_history

    history = recent_history(ledger, run.ref.key, run.ref.flow.quality)
    outcome = check_quality(
        run.staging.read_batches("extract"),
        run.ref.flow,
        agreement_id=run.ref.agreement.id,
        logical_date=run.logical_date,
        report_dir=run.reports_dir,
        history=history,
        expectations_dir=run.config.root.parent / "expectations",
    )
    summary = outcome.summary()
    ledger.append(
        "quality",
        agreement=run.ref.agreement.id,
        flow=run.ref.key,
        logical_date=run.logical_date,
        payload=summary,
    )
    run.staging.write_json("quarantine", sorted(list(k) for k in outcome.quarantined_keys))
    log.info("quality checked", **run._ctx(blocked=outcome.blocked, quarantined=len(outcome.quarantined_keys),
                                         held_back_rows=outcome.held_back_rows))
    if outcome.blocked:
        details = ", ".join(
            f"{d} ({outcome.dimensions[d].failing_rows} of {outcome.rows} rows)" for d in outcome.blocked
        )
        raise QualityBlocked(
            f"flow {run.ref.key} on {run.ds}: blocked by data quality: {details}; nothing was sent. "
            f"The data owner's report is {outcome.report_html}"
        )
    return {
        "rows": outcome.rows,
        "quarantined": len(outcome.quarantined_keys),
        "held_back_rows": outcome.held_back_rows,
        "report": str(outcome.report_html) if outcome.report_html else None,
        "rectification": str(outcome.rectification_html) if outcome.rectification_html else None,
        "records_to_fix": outcome.records_to_fix,
    }


def prepare(run: FlowRun, pseudonym_key: bytes | None, *, ledger=None,  # noqa: ANN001
            connection: Callable[[str], ConnInfo] | None = None, lookup_key: bytes | None = None) -> dict:
    """Hold back quarantined rows, exclude who may not be sent, then minimise, pseudonymise and generalise."""
    from transfers.privacy import apply_privacy
    from transfers.privacy.step import Screening

    flow = run.ref.flow
    held = {tuple(k) for k in (run.staging.read_json("quarantine", []) or [])}
    totals: dict = {"rows_in": 0, "rows_out": 0, "held_back": 0}
    screening = Screening(run, key=pseudonym_key, lookup=lookup_key, connection=connection)

    def batches() -> Iterator[pd.DataFrame]:
        for batch in run.staging.read_batches("extract"):
            totals["rows_in"] += len(batch)
            if held and len(batch):
                keys = batch[flow.key_fields].astype(str).apply(tuple, axis=1)
                keep = ~keys.isin(held)
                totals["held_back"] += int((~keep).sum())
                batch = batch[keep]
            batch = screening.screen(batch)
            safe, _stats = apply_privacy(batch, flow, key=pseudonym_key, logical_date=run.logical_date)
            screening.sent(batch, safe)
            totals["rows_out"] += len(safe)
            yield safe

    run.staging.write_batches("prepared", batches(), columns=flow.shared_fields)
    totals.update(screening.finish(ledger))
    log.info("prepared", **run._ctx(**totals))
    return totals


def _delivery_parts(run: FlowRun) -> Iterator[tuple[bytes, int]]:
    """The prepared rows as CSV files of at most ``delivery_max_rows`` rows each."""
    limit = run.settings.delivery_max_rows
    columns = run.staging.columns("prepared")
    buffer: list[pd.DataFrame] = []
    count = 0
    yielded = False

    def flush() -> tuple[bytes, int]:
        frame = pd.concat(buffer) if buffer else pd.DataFrame(columns=columns)
        if run.ref.flow.csv.formula_escape:
            from transfers.csv_escape import escape_frame

            frame = escape_frame(frame)
        out = io.StringIO()
        frame.to_csv(out, index=False, columns=columns)
        return out.getvalue().encode("utf-8"), len(frame)

    for batch in run.staging.read_batches("prepared"):
        start = 0
        while start < len(batch):
            take = batch.iloc[start : start + (limit - count)]
            buffer.append(take)
            count += len(take)
            start += len(take)
            if count >= limit:
                yield flush()
                buffer, count, yielded = [], 0, True
    if buffer or not yielded:
        yield flush()


def package(run: FlowRun, partner: str, ledger) -> dict:  # noqa: ANN001
    """Encrypt the prepared rows to the recipient's pinned key, into its outbox."""
    from transfers.crypto import encrypt_to_file
    from transfers.diskspace import writing

    recipient = run.recipient(partner)
    outbox = run.outbox_dir(recipient)
    manifest_path = outbox / f"{run.base_name}.manifest.json"
    if manifest_path.exists():
        # A previous attempt sealed this outbox: sending a fresh encryption would put a
        # different file under a name the recipient may already hold.
        manifest = json.loads(manifest_path.read_text())
        log.info("outbox reused", **run._ctx(recipient=partner, files=len(manifest["files"])))
        return {"files": len(manifest["files"]), "rows": manifest["rows"], "reused": True}

    key = _recipient_key(run, recipient, ledger)
    private_dir(outbox)
    files = []
    for name, (plaintext, rows) in _delivery_parts_named(run):
        encrypted = encrypt_to_file(plaintext, key, outbox / name, filename=name.removesuffix(".pgp"))
        files.append({"name": name, "size": encrypted.size, "sha256": encrypted.sha256, "rows": rows})
        del plaintext
    head = ledger.head()
    manifest = {
        "agreement": run.ref.agreement.id,
        "flow": run.ref.flow.id,
        "logical_date": run.ds,
        "sender": run.ref.flow.from_,
        "recipient": partner,
        "recipient_fingerprint": recipient.pgp_fingerprint,
        "fields": run.ref.flow.shared_fields,
        # The recipient needs to know whether a leading ' was added, to load values exactly (csv_escape).
        "formula_escape": run.ref.flow.csv.formula_escape,
        "rows": sum(f["rows"] for f in files),
        "files": files,
        # The ledger's head travels with every delivery, so a ledger cut short
        # after this point can be shown against a copy held by the recipient.
        "ledger_head": {"seq": head.seq, "hash": head.hash} if head else None,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    from transfers.privacy.step import seal_subjects

    seal_subjects(run, outbox)  # before the manifest: a sealed outbox always names its subjects
    with writing(outbox, "the delivery manifest"):
        write_atomic(manifest_path, json.dumps(manifest, indent=2))
    log.info("encrypted", **run._ctx(recipient=partner, files=len(files), rows=manifest["rows"]))
    return {"files": len(files), "rows": manifest["rows"], "reused": False}


def _recipient_key(run: FlowRun, recipient: Recipient, ledger):  # noqa: ANN001, ANN202
    """The recipient's checked key; a refusal is recorded in the ledger and the run log before it stops the run."""
    from transfers.crypto import load_recipient_key
    from transfers.errors import KeyRefused, TransferError

    try:
        return load_recipient_key(run.settings.keys / recipient.key_file, recipient.pgp_fingerprint)
    except KeyRefused as exc:
        # Who was not sent to, and why, is evidence for the IG officer; the reason names the
        # key file and fingerprints only, never key material.
        detail = {"partner": recipient.partner, "fingerprint": recipient.pgp_fingerprint,
                  "key_file": recipient.key_file, "reason": str(exc)}
        log.error("recipient key refused", **run._ctx(**detail))
        try:
            ledger.append("key-refused", agreement=run.ref.agreement.id, flow=run.ref.key,
                          logical_date=run.logical_date, recipient=recipient.partner, payload=detail)
        except TransferError as ledger_exc:  # the refusal still stops the run; say the record is missing
            log.error("key refusal not recorded in the ledger", **run._ctx(error=str(ledger_exc)))
        raise


def _delivery_parts_named(run: FlowRun) -> Iterator[tuple[str, tuple[bytes, int]]]:
    """Name parts from the row count known up front, so only one part is in memory."""
    rows = run.staging.rows("prepared")
    total = max(1, -(-rows // run.settings.delivery_max_rows))
    for i, part in enumerate(_delivery_parts(run), start=1):
        name = f"{run.base_name}.csv.pgp" if total == 1 else f"{run.base_name}_part{i:03d}of{total:03d}.csv.pgp"
        yield name, part


def deliver(run: FlowRun, partner: str, target, ledger, *, connection=None) -> dict:  # noqa: ANN001
    """Archive the sealed outbox, upload it to the recipient, record the disclosure once.

    ``connection`` resolves the archive's connection when the flow archives to S3.
    """
    from transfers.delivery import deliver_file, open_sftp
    from transfers.retention.archive import archive_delivery

    recipient = run.recipient(partner)
    existing = ledger.find(run.disclosure_key(recipient))
    if existing is not None:
        log.info("already delivered", **run._ctx(recipient=partner, ledger_seq=existing.seq))
        return {"status": "already-delivered", "ledger_seq": existing.seq}
    outbox = run.outbox_dir(recipient)
    manifest_path = outbox / f"{run.base_name}.manifest.json"
    if not manifest_path.exists():
        raise StateError(f"{outbox}: nothing packaged for {partner} on {run.ds}; run the package step first")
    manifest = json.loads(manifest_path.read_text())
    # Archived before it is sent: if archiving fails nothing leaves, and the retry archives it
    # (idempotent), so every disclosure has its archived copy.
    archived = archive_delivery(run.settings.home, run.ref, run.ds, partner, outbox,
                                [item["name"] for item in manifest["files"]] + [manifest_path.name], ledger, connection)
    record_intent(run, partner, target, manifest, ledger)
    receipts = []
    with open_sftp(target) as session:
        # Data files first, the manifest last: a recipient that sees the manifest
        # knows every file it lists is complete.
        for item in manifest["files"]:
            receipts.append(deliver_file(session, outbox / item["name"], item["name"]))
        receipts.append(deliver_file(session, manifest_path, manifest_path.name))
    statuses = {r.status for r in receipts}
    status = "reconciled" if statuses == {"reconciled"} else "delivered"
    from transfers.privacy.step import record_disclosure

    # Pseudonyms of the subjects sent go beside the ledger; the entry holds their count and hash.
    subjects = record_disclosure(run, partner, run.disclosure_key(recipient), outbox)
    agreement = run.ref.agreement
    entry, created = ledger.append(
        "disclosure",
        agreement=agreement.id,
        flow=run.ref.key,
        logical_date=run.logical_date,
        recipient=partner,
        dedupe_key=run.disclosure_key(recipient),
        payload={
            "status": status,
            "sender": run.ref.flow.from_,
            "purposes": agreement.purposes,
            "legal_basis": agreement.legal_basis,
            "fields": manifest["fields"],
            "rows": manifest["rows"],
            "recipient_fingerprint": recipient.pgp_fingerprint,
            "host": f"{target.host}:{target.port}",
            "remote_dir": target.remote_dir,
            "pseudonym_key_id": agreement.pseudonymisation.key_id if agreement.pseudonymisation else None,
            "subjects": subjects,
            "files": [
                {"remote_path": r.remote_path, "size": r.size, "sha256": r.sha256, "status": r.status}
                for r in receipts
            ],
        },
    )
    log.info("delivered", **run._ctx(recipient=partner, status=status, files=len(receipts), ledger_seq=entry.seq))
    return {"status": status, "files": len(receipts), "rows": manifest["rows"], "ledger_seq": entry.seq,
            "archived": archived.get("archived", 0)}


def intent_key(disclosure_key: str) -> str:
    return f"intent:{disclosure_key}"


def record_intent(run: FlowRun, partner: str, target, manifest: dict, ledger) -> None:  # noqa: ANN001
    """Before the first byte leaves: which files are about to reach ``partner``, once per (flow, date).

    If the upload stops after a data file landed (the manifest failed, the task was
    killed), the ledger still shows what may sit at the recipient; the retry
    reconciles those files into the disclosure, and remote purge can find them
    even if no retry ever comes.
    """
    key = run.disclosure_key(run.recipient(partner))
    directory = target.remote_dir

    def remote(name: str) -> str:
        return name if directory == "." else f"{directory}/{name}"

    files = [{"remote_path": remote(f["name"]), "size": f["size"], "sha256": f["sha256"]} for f in manifest["files"]]
    files.append({"remote_path": remote(f"{run.base_name}.manifest.json"), "size": None, "sha256": None})
    ledger.append(
        "delivery-intent", agreement=run.ref.agreement.id, flow=run.ref.key, logical_date=run.logical_date,
        recipient=partner, dedupe_key=intent_key(key),
        payload={"disclosure_key": key, "host": f"{target.host}:{target.port}", "remote_dir": directory,
                 "files": files},
    )


def cleanup(run: FlowRun) -> dict:
    """Remove the run's working files; the encrypted outbox stays for retention."""
    from transfers.retention.running import clear_running

    run.staging.clear()
    try:
        run.run_dir.rmdir()
    except OSError:
        pass
    clear_running(run.settings.home, run.ref.agreement.id, run.ref.flow.id, run.ds)
    return {"cleared": str(run.run_dir), "prepared_subject_rows_removed": _forget_prepared_subjects(run)}


def _forget_prepared_subjects(run: FlowRun) -> int | None:
    """Once every recipient has this date's disclosure, its "prepared" subject rows have done their job."""
    from transfers.privacy.subjects import SubjectIndex

    try:
        ledger = run.settings.open_ledger()
        if any(ledger.find(run.disclosure_key(r)) is None for r in run.ref.flow.to):
            return None  # a retry still needs them to record who the sealed outbox holds
        index = SubjectIndex.for_settings(run.settings)
        try:
            return index.forget_prepared(run.ref.key, run.logical_date)
        finally:
            index.close()
    except Exception as exc:  # noqa: BLE001 - housekeeping must not hide the run's own outcome
        log.warning("prepared subject rows kept", **run._ctx(error=type(exc).__name__))
        return None


# --------------------------------------------------------------------------- one call


def pseudonym_key(run: FlowRun, secret: Callable[[str], str]) -> bytes | None:
    from transfers.privacy import derive_key

    setting = run.ref.agreement.pseudonymisation
    if setting is None:
        return None
    domain = setting.linkage_domain or run.ref.agreement.id
    return derive_key(secret(setting.key_secret), domain=domain, key_id=setting.key_id)


def run_flow(run: FlowRun, resolvers: Resolvers, *, progress: Callable[[str], None] | None = None,
             wait: float = 0) -> dict:
    """Every step for one (flow, logical date); working files are removed whatever happens.

    The steps' log lines (names, counts, paths; never record values) also go to the
    run's own log file, which retention deletes on the flow's ``logs`` period.

    The run holds the (flow, date) lock throughout (see ``transfers.runlock``), taken
    before anything is touched: a second run waits up to ``wait`` seconds, then raises
    ``RunLocked`` having changed nothing, so it never clears the first run's files.
    """
    from transfers.runlock import cli_owner, hold

    run.settings.home.mkdir(parents=True, exist_ok=True)  # the default SQLite ledger (and lock) live there
    with hold(run.settings.ledger_database, run.ref.key, run.ds, cli_owner(), wait=wait,
              ttl=run.settings.run_lock_ttl) as held, run_log(run.log_path):
        results = _run_steps(run, resolvers, progress)
        if held.took_over is not None:
            results["took_over"] = {"holder": held.took_over.describe(),
                                    "since": held.took_over.started_at.isoformat(timespec="seconds")}
        return results


def _run_steps(run: FlowRun, resolvers: Resolvers, progress: Callable[[str], None] | None) -> dict:
    say = progress or (lambda _msg: None)
    ledger = run.settings.open_ledger()
    results: dict[str, object] = {}
    try:
        say("checking the agreement")
        results["check"] = check(run, ledger)
        pending = results["check"]["pending"]
        if not pending:
            say("already delivered to every recipient: nothing to do")
            results["status"] = "already-delivered"
            return results
        say("extracting")
        results["extract"] = extract(run, resolvers.connection(run.ref.flow.source.connection))
        say("checking data quality")
        results["quality"] = assess(run, ledger)
        say("minimising and pseudonymising")
        from transfers.delivery import SftpTarget
        from transfers.privacy.step import subject_lookup_key

        results["prepare"] = prepare(run, pseudonym_key(run, resolvers.secret), ledger=ledger,
                                     connection=resolvers.connection,
                                     lookup_key=subject_lookup_key(run, resolvers.secret))
        for partner in pending:
            recipient = run.recipient(partner)
            say(f"encrypting for {partner}")
            results[f"package:{partner}"] = package(run, partner, ledger)
            say(f"delivering to {partner}")
            target = SftpTarget.from_connection(resolvers.connection(recipient.sftp), recipient, settings=run.settings)
            results[f"deliver:{partner}"] = deliver(run, partner, target, ledger, connection=resolvers.connection)
        from transfers.notices import notify_withdrawals

        # A withdrawal that reached the register since the last run is told to every earlier recipient.
        results["notices"] = notify_withdrawals(run, resolvers, ledger)
        results["status"] = "delivered"
        return results
    finally:
        cleanup(run)
