"""The demo: the sample agreement's three partners, each its own deployment, both ends of both flows.

Each partner (Children's Services, South Yorkshire Police, the NHS trust) gets its own
``TRANSFERS_HOME`` (ledger, store, archive), its own Airflow, its own keys made with ``gpg``
(a signing key each; a decryption key for each recipient) and, if it receives, its own SFTP
server (a local stand-in on 127.0.0.1 with a pinned host key) whose upload root is its inbox.
The trust sends flow B to Children's Services, who receive it and return a signed receipt; then
Children's Services send flow A to the police, who do the same. Each sender's DAG waits for the
receipt (a reschedule sensor) and records it. Sources are synthetic (a SQLite case database, a
CSV export), each with a few defects seeded (``synthetic.DEFECTS``) that quality holds back, so
each sender's rectification notice has records in it. Nothing is written outside ``var/demo`` and
nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from transfers.agreement import Config, load_config
from transfers.devkit import synthetic
from transfers.devkit.gpg import GpgError, GpgHome, signed_by
from transfers.devkit.parties import Party, make_parties
from transfers.ledger.records import Acknowledgement, Received
from transfers.settings import PROJECT_ROOT, HomeLayout, Settings
from transfers.staging import new_staging_key

if TYPE_CHECKING:
    from tools.sftp_standin import SftpStandIn


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def sftp_standin() -> type[SftpStandIn]:
    """The SFTP stand-in class, from the checkout's ``tools/`` (it is kept out of the installed package)."""
    try:
        from tools.sftp_standin import SftpStandIn
    except ModuleNotFoundError as exc:
        # An installed copy has no tools/ (and some dependency ships a stray namespace "tools").
        if exc.name not in ("tools", "tools.sftp_standin"):
            raise
        raise SystemExit(
            "the demo runs from a checkout of isp-transfers: start it with scripts/demo in the repository "
            "(its local SFTP server, tools/sftp_standin.py, is not part of the installed package)"
        ) from None
    return SftpStandIn


def client_key() -> tuple[str, str]:
    """A fresh Ed25519 SSH key for the sender: (private OpenSSH text, public line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public


MAIN_FLOW_ORDER = ("mash-referrals.B", "mash-referrals.A")  # B first: its recipient sends A afterwards
# The characteristics synthetic.DEFECTS fail. The sample agreement blocks the whole run on them, which
# would show a newcomer no delivery at all; the demo's copy holds the failing records back instead.
HOLD_BACK = ("accuracy", "validity", "completeness", "reliability")
REFERRALS, ATTENDANCES = 120, 80  # records in flow A's and flow B's synthetic source


def make_sources(case_db: Path, exports: Path, logical_date: date) -> None:
    """The senders' synthetic sources: flow A's case database, flow B's export and its consent lists.

    Each extract has ``synthetic.DEFECTS`` seeded, so quality holds records back and the notices list them.
    """
    case_db.parent.mkdir(parents=True, exist_ok=True)
    synthetic.write_referrals_table(f"sqlite:///{case_db}",
                                    synthetic.referrals(REFERRALS, logical_date, defects=synthetic.DEFECTS))
    attendances = synthetic.ed_attendances(ATTENDANCES, logical_date, defects=synthetic.DEFECTS)
    synthetic.write_ed_csv(exports, logical_date, attendances)
    # A few patients withdrew consent or opted out: flow B (basis consent) leaves them out.
    synthetic.write_consent_lists(exports, list(attendances["nhs_number"]), logical_date, withdrawn=3, opted_out=2)


def _dag_test(party: Party, dag_id: str, logical_date: date, log_path: Path) -> subprocess.Popen:
    """``airflow dags test`` of one of ``party``'s DAGs, in the background, logging to ``log_path``."""
    log = log_path.open("w")
    return subprocess.Popen([sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date.isoformat()],
                            env=party.env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(path_glob: tuple[Path, str], process: subprocess.Popen, what: str, seconds: float = 300) -> bool:
    """Wait until a file matching ``path_glob`` exists, while ``process`` (the sender's run) is alive."""
    folder, pattern = path_glob
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(folder.rglob(pattern)):
            return True
        if process.poll() is not None and not any(folder.rglob(pattern)):
            print(f"    FAILED: the sender's run ended ({process.returncode}) before {what} arrived")
            return False
        time.sleep(0.5)
    print(f"    FAILED: {what} did not arrive within {seconds:.0f}s")
    return False


def main() -> int:  # a linear script reads best as one function
    standin = sftp_standin()  # before anything is made: outside a checkout there is no demo
    workspace = PROJECT_ROOT / "var" / "demo"
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    today = datetime.now(UTC).date()
    logical_date = today - timedelta(days=1)

    say("making each partner's own keys with gpg: a signing key each, a decryption key for each recipient")
    gpg = GpgHome(workspace / "partners-gnupg")
    parties, config_dir = make_parties(workspace, gpg, today, hold_back=HOLD_BACK)
    for party in parties.values():
        sends = ", ".join(party.sends) or "nothing"
        receives = ", ".join(party.receives) or "nothing"
        print(f"    {party.id}: sends {sends}; receives {receives}; signs with {party.signing_fingerprint}")

    say(f"making synthetic source data for {logical_date}, with {len(synthetic.DEFECTS)} defects seeded in each "
        f"source ({', '.join(synthetic.DEFECTS)})")
    sender_a, sender_b = parties["rotherham-childrens-services"], parties["rotherham-nhs-ft"]
    case_db = sender_a.root / "sources" / "case-system.db"
    exports = sender_b.root / "sources" / "trust-exports"
    make_sources(case_db, exports, logical_date)
    pseudonym_key = os.urandom(32).hex()  # the agreement's key: both senders pseudonymise alike
    sender_a.env["AIRFLOW_CONN_CS_CASE_DB"] = json.dumps({"conn_type": "sqlite", "host": str(case_db)})
    sender_b.env["AIRFLOW_CONN_RFT_EXPORTS"] = json.dumps({"conn_type": "fs", "extra": {"path": str(exports)}})

    say("starting each recipient's own SFTP server on 127.0.0.1 (its upload root is its inbox; host keys pinned)")
    servers: dict[str, SftpStandIn] = {}
    config = load_config(config_dir)
    for party in parties.values():
        if not party.receives:
            continue
        private, public = client_key()  # the key its partners log in with
        server = standin(party.inbox, authorized_key=public, host_key_path=party.root / "sftp-host-key")
        server.start()
        servers[party.id] = server
        print(f"    {party.id}: 127.0.0.1:{server.port}, inbox {party.inbox}")
        for ref in config.flows():  # every sender of a flow to this party gets its connection
            for recipient in ref.flow.to:
                if recipient.partner == party.id:
                    parties[ref.flow.from_].env[f"AIRFLOW_CONN_{recipient.sftp_connection.upper()}"] = json.dumps({
                        "conn_type": "sftp", "host": "127.0.0.1", "port": server.port, "login": "transfers",
                        "extra": {"host_key": server.host_key_line, "private_key": private}})

    template = workspace / "airflow-metadata.db"
    base_env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                # Sensors (a receive, a receipt) look again every 2 s here, not every 5 minutes.
                "TRANSFERS_POKE_SECONDS": "2"}
    for party in parties.values():
        party.env = {**base_env, **party.env, "AIRFLOW_VAR_TRANSFERS_STAGING_KEY": new_staging_key(),
                     "AIRFLOW_VAR_MASH_PSEUDONYM_KEY": pseudonym_key}
        party.write_env()
    try:
        say("initialising Airflow's metadata database once (SQLite), then a copy for each partner")
        started = time.monotonic()
        first = next(iter(parties.values()))
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=first.env, check=True,
                       stdout=subprocess.DEVNULL)
        shutil.copy2(first.airflow_home / "airflow.db", template)
        for party in parties.values():
            party.airflow_home.mkdir(exist_ok=True)
            if party is not first:
                shutil.copy2(template, party.airflow_home / "airflow.db")
        print(f"    done in {time.monotonic() - started:.0f}s")
        for flow_key in MAIN_FLOW_ORDER:
            ref = config.flow(flow_key)
            sender = parties[ref.flow.from_]
            say(f"{sender.id} runs its DAG {flow_key} for {logical_date} (airflow dags test); it waits for the "
                f"signed receipt")
            sending = _dag_test(sender, flow_key, logical_date, sender.root / f"{flow_key}.log")
            for recipient in ref.flow.to:
                party = parties[recipient.partner]
                if not _wait_for((party.inbox, f"*{ref.flow.id}_{logical_date}.manifest.json"), sending,
                                 f"the delivery to {party.id}"):
                    sending.kill()
                    return 1
                dag_id = f"receive_{flow_key}"
                say(f"{party.id} runs its DAG {dag_id}: verify, load, signed receipt")
                log_path = party.root / f"{dag_id}.log"
                receiving = _dag_test(party, dag_id, logical_date, log_path)
                if receiving.wait(timeout=600) != 0:
                    print(f"    FAILED: see {log_path}")
                    sending.kill()
                    return 1
                print(f"    ok (Airflow log: {log_path})")
            if sending.wait(timeout=600) != 0:
                print(f"    FAILED: {sender.id}'s run of {flow_key}: see {sender.root / f'{flow_key}.log'}")
                return 1
            print(f"    {sender.id}: receipt verified and recorded (Airflow log: {sender.root / f'{flow_key}.log'})")
    finally:
        for server in servers.values():
            server.stop()
    return report(parties, config, gpg, workspace, logical_date, today)


def _transfers(party: Party, *args: str) -> subprocess.CompletedProcess:
    # Wide enough that a table keeps one line per row in the demo's output.
    return subprocess.run([sys.executable, "-m", "transfers", *args], env={**party.env, "COLUMNS": "160"},
                          capture_output=True, text=True)


def report(parties: dict[str, Party], config: Config, gpg: GpgHome, workspace: Path, logical_date: date,
           today: date) -> int:
    """Check what each party holds as an outsider would (gpg, the ledgers, the store) and say where it is."""
    say("checking each delivery as the recipient would: gpg --decrypt and gpg --verify (senders' archived copies)")
    failed = False
    for sender in parties.values():
        for path in sorted(sender.home.glob("archive/**/*.pgp")):
            plaintext, status = gpg.decrypt_with_status(path)
            rows = plaintext.decode().splitlines()
            signer = signed_by(status)
            ok = signer == sender.signing_fingerprint
            failed |= not ok
            print(f"    {path.relative_to(workspace)}: {len(rows) - 1} rows; gpg: "
                  f"{'good signature from ' + sender.id + ' ' + str(signer) if ok else 'NO good signature'}")
        for manifest in sorted(sender.home.glob("archive/**/*.manifest.json")):
            try:
                signer = signed_by(gpg.verify_detached(manifest.with_name(manifest.name + ".asc"), manifest))
            except GpgError as exc:
                print(f"    FAILED: {manifest.name}: {exc}")
                return 1
            print(f"    {manifest.relative_to(workspace)}: gpg --verify: good signature from {signer}")

    say("where each party's ledger shows the exchange")
    for party in parties.values():
        verify = _transfers(party, "ledger", "verify")
        failed |= verify.returncode != 0
        print(f"  {party.id} (TRANSFERS_HOME={party.home}):")
        print(f"      {verify.stdout.strip() or verify.stderr.strip()}")
        if party.sends:
            receipts = _transfers(party, "receipts")
            failed |= receipts.returncode != 0
            print("      " + "\n      ".join(receipts.stdout.strip().splitlines()))
        with _open_ledger(party) as ledger:
            for received in ledger.records(Received):
                print(f"      received {received.flow} {received.logical_date} from {received.sender}: "
                      f"{received.status}, {received.rows} rows loaded into its store "
                      f"({Settings(home=party.home).store_database}), receipt {str(received.receipt_sha256)[:16]} returned")
            for ack in ledger.records(Acknowledgement):
                print(f"      {ack.flow} {ack.logical_date} to {ack.recipient}: {ack.status} by the signed receipt "
                      f"{str(ack.receipt_sha256)[:16]} (ledger entry {ack.seq})")

    say("writing the IG officer's evidence for each sender: the disclosure report (with receipts) and the agreement")
    for party in parties.values():
        if not party.sends:
            continue
        ig_dir = party.root / "ig"
        for command in (["report", "ig", "--from", logical_date.isoformat(), "--to", today.isoformat(),
                         "--out", str(ig_dir)],
                        ["agreement", "render", "mash-referrals", "--format", "html",
                         "--out", str(ig_dir / "mash-referrals-agreement.html")]):
            done = _transfers(party, *command)
            if done.returncode != 0:
                print(f"    FAILED: transfers {' '.join(command[:2])}: {done.stderr.strip()[-500:]}")
                return 1
        for path in sorted(ig_dir.glob("*.html")):
            print(f"    {path}")
    quality_findings(parties, config, logical_date)
    print()
    say("done. Explore one party with the CLI, on its own settings (the SFTP stand-ins have stopped):")
    for party in parties.values():
        print(f"      set -a; . {party.root / 'party.env'}; set +a   # {party.id}")
    print("      uv run transfers receipts                      # a sender: each disclosure and its receipt")
    print("      uv run transfers report quality mash-referrals.B")
    print("      uv run transfers subject history <an NHS number from var/demo/rotherham-nhs-ft/sources/>")
    print("  decrypt an archived delivery as the recipient would (gpg names the signer):")
    print(f"      GNUPGHOME={gpg.path} gpg --decrypt <a .pgp under var/demo/<sender>/state/archive/>")
    return 1 if failed else 0


def quality_findings(parties: dict[str, Party], config: Config, logical_date: date) -> None:
    """Each sender's run: how many records quality held back and why, and where the data owner's reports are."""
    say("what each sender's data owner should fix (the defects seeded in the synthetic data)")
    for party in parties.values():
        for flow_key in party.sends:
            ref = config.flow(flow_key)
            folder = Settings(home=party.home).layout.reports_dir(ref.agreement.id, ref.flow.id)
            stem = HomeLayout.report_stem(ref.flow.id, logical_date)
            doc = json.loads((folder / f"quality_{stem}.json").read_text(encoding="utf-8"))
            print(f"    {flow_key} ({party.id}): {held_back(doc)}")
            print(f"      rectification notice: {folder / f'rectification_{stem}.html'} (and .csv): each record "
                  "to fix, its row, field and problem")
            print(f"      scorecard:            {folder / f'quality_{stem}.html'}")


def held_back(doc: dict) -> str:
    """One line from a run's scorecard (JSON): records held back and those sent with a warning, and why."""
    held, to_fix = doc["held_back_rows"], (doc.get("rectification") or {}).get("records", 0)
    line = f"{held} of {doc['rows']} records held back: {_failures(doc, 'quarantine') or 'none'}"
    if to_fix > held:  # a characteristic that warns lists its records in the notice and sends them
        line += f"; {to_fix - held} more to fix, sent with a warning: {_failures(doc, 'warn')}"
    return line


def _failures(doc: dict, outcome: str) -> str:
    """The characteristics with that outcome: records failing each, and the fields they failed on."""
    parts = []
    for dimension, result in doc["dimensions"].items():
        if result["outcome"] != outcome or not result["failing_rows"]:
            continue
        fields = dict.fromkeys(c["field"] or "record key" for c in doc["checks"]
                               if c["dimension"] == dimension and c["success"] is False and c["failing"])
        parts.append(f"{dimension} {result['failing_rows']} ({', '.join(fields)})")
    return ", ".join(parts)


def _open_ledger(party: Party):  # the party's own ledger, read in this process
    return Settings(home=party.home).open_ledger()


if __name__ == "__main__":
    sys.exit(main())
