"""The demo: both sample flows, end to end, through Airflow, on this machine only.

Everything a real deployment gets from partners is made here at run time:
the recipients' OpenPGP key pairs and the senders' signing key (with ``gpg``, as a
partner would; the recipients' keyring holds the sender's public key, so ``gpg
--decrypt`` names who signed), their
SFTP servers (a local stand-in on 127.0.0.1 with a pinned host key), the
sender's source systems (a synthetic SQLite case database and a CSV export),
and the secrets. Nothing is written outside ``var/demo`` and nothing leaves
the machine.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from transfers.devkit import synthetic
from transfers.devkit.gpg import GpgError, GpgHome, signed_by
from transfers.devkit.signoff import sign_for_partners
from transfers.settings import PROJECT_ROOT
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


def prepare_config(workspace: Path, gpg: GpgHome, today: date) -> tuple[dict[str, str], str]:
    """Copy config/, pin each recipient to a key pair generated now and every partner to one signing key.

    Every partner signs the agreement copy with that key (its own signature file). One signing key for all: the demo runs both flows in one Airflow, which reads one
    ``transfers_signing_key`` secret (until a deployment names its own party).

    Returns:
        The recipients' fingerprints by partner, and the senders' signing key fingerprint.
    """
    config_dir = workspace / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    keys_dir = workspace / "keys"
    keys_dir.mkdir()
    path = config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    if not data["in_force"] <= today <= data["review_by"]:
        say(f"the sample agreement is not live today ({data['in_force']} to {data['review_by']}): "
            "the demo copy moves its dates so it can run")
        data["in_force"], data["review_by"] = today - timedelta(days=30), today + timedelta(days=335)
    fingerprints: dict[str, str] = {}
    for flow in data["flows"]:
        for recipient in flow["to"]:
            partner = recipient["partner"]
            if partner not in fingerprints:
                fingerprints[partner] = gpg.generate_key(f"{partner} (demo) <{partner}@demo.invalid>", algo="cv25519")
                gpg.export_public(fingerprints[partner], keys_dir / f"{partner}.asc")
            recipient["pgp_fingerprint"] = fingerprints[partner]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    signing = gpg.generate_key("MASH senders' signing key (demo) <signing@demo.invalid>", algo="cv25519",
                               encryption_subkey=False)
    # Every partner signs the agreement (Tier 2 sign-off), senders sign deliveries too: one demo key plays all.
    senders = {flow["from"] for flow in data["flows"]} | set(data["partners"])
    protocol_path = config_dir / "protocol.yaml"
    protocol = yaml.safe_load(protocol_path.read_text())
    for signatory in protocol["signatories"]:
        if signatory["id"] in senders:
            signatory["signing_fingerprint"] = signing
    protocol_path.write_text(yaml.safe_dump(protocol, sort_keys=False))
    signing_public = gpg.export_public(signing, workspace / "signing.asc").read_text()
    for sender in senders:  # beside the partner's encryption key, if it also receives
        key_file = keys_dir / f"{sender}.asc"
        key_file.write_text((key_file.read_text() if key_file.exists() else "") + signing_public)
    # Each partner signs the demo's copy of the agreement (its own signature file), as each owner would
    # with `transfers agreement sign`: without it no flow runs.
    for agreement_id, partner, sig in sign_for_partners(config_dir, gpg.export_secret(signing)):
        print(f"    {agreement_id} signed off by {partner}: {sig.relative_to(workspace)}")
    return fingerprints, signing


def main() -> int:  # a linear script reads best as one function
    standin = sftp_standin()  # before anything is made: outside a checkout there is no demo
    workspace = PROJECT_ROOT / "var" / "demo"
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    today = datetime.now(UTC).date()
    logical_date = today - timedelta(days=1)

    say("generating the recipients' OpenPGP keys and the senders' signing key with gpg (as each partner would)")
    gpg = GpgHome(workspace / "partners-gnupg")
    fingerprints, signing = prepare_config(workspace, gpg, today)
    for partner, fpr in fingerprints.items():
        print(f"    {partner}: {fpr}")
    print(f"    senders' signing key: {signing}")

    say(f"making synthetic source data for {logical_date}")
    case_db = workspace / "sources" / "case-system.db"
    case_db.parent.mkdir(parents=True)
    synthetic.write_referrals_table(f"sqlite:///{case_db}", synthetic.referrals(120, logical_date))
    exports = workspace / "sources" / "trust-exports"
    attendances = synthetic.ed_attendances(80, logical_date)
    synthetic.write_ed_csv(exports, logical_date, attendances)
    # A few patients withdrew consent or opted out: flow B (basis consent) leaves them out.
    synthetic.write_consent_lists(exports, list(attendances["nhs_number"]), logical_date, withdrawn=3, opted_out=2)

    say("starting a local SFTP server for each recipient on 127.0.0.1 (host keys pinned)")
    private, public = client_key()
    servers: dict[str, SftpStandIn] = {}
    for partner in fingerprints:
        root = workspace / "partners-sftp" / partner
        root.mkdir(parents=True)
        server = standin(root, authorized_key=public, host_key_path=workspace / f"hostkey-{partner}")
        server.start()
        servers[partner] = server
        print(f"    {partner}: 127.0.0.1:{server.port}")

    airflow_home = workspace / "airflow"
    state = workspace / "state"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "TRANSFERS_CONFIG_DIR": str(workspace / "config"),
        "TRANSFERS_KEYS_DIR": str(workspace / "keys"),
        "TRANSFERS_HOME": str(state),
        "AIRFLOW_VAR_TRANSFERS_STAGING_KEY": new_staging_key(),
        "AIRFLOW_VAR_MASH_PSEUDONYM_KEY": os.urandom(32).hex(),
        # The senders' private signing key, as a deployment's secrets backend holds it (throwaway).
        "AIRFLOW_VAR_TRANSFERS_SIGNING_KEY": gpg.export_secret(signing),
        "AIRFLOW_CONN_CS_CASE_DB": json.dumps({"conn_type": "sqlite", "host": str(case_db)}),
        "AIRFLOW_CONN_RFT_EXPORTS": json.dumps({"conn_type": "fs", "extra": {"path": str(exports)}}),
    }
    # The demo's own throwaway settings (synthetic data, keys made for this run), kept so
    # the user can go on exploring with the CLI: set -a; . var/demo/demo.env; set +a
    env_file = workspace / "demo.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()
                                if k.startswith(("TRANSFERS_", "AIRFLOW_VAR_", "AIRFLOW_CONN_"))))
    sftp_conn = {"south-yorkshire-police": "AIRFLOW_CONN_SYP_SFTP", "rotherham-childrens-services": "AIRFLOW_CONN_CS_SFTP"}
    for partner, server in servers.items():
        env[sftp_conn[partner]] = json.dumps({
            "conn_type": "sftp", "host": "127.0.0.1", "port": server.port, "login": "transfers",
            "extra": {"host_key": server.host_key_line, "private_key": private},
        })
    airflow = [sys.executable, "-m", "airflow"]
    try:
        say("initialising Airflow's metadata database (SQLite, under var/demo/airflow)")
        started = time.monotonic()
        subprocess.run([*airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"    done in {time.monotonic() - started:.0f}s")
        for dag_id in ("mash-referrals.A", "mash-referrals.B"):
            say(f"running DAG {dag_id} for {logical_date} through Airflow (airflow dags test)")
            log_path = workspace / f"{dag_id}.log"
            with log_path.open("w") as log:
                result = subprocess.run([*airflow, "dags", "test", dag_id, logical_date.isoformat()],
                                        env=env, stdout=log, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                print(f"    FAILED: see {log_path}")
                return 1
            print(f"    ok (Airflow log: {log_path})")
    finally:
        for server in servers.values():
            server.stop()

    say("checking each delivery as the recipient would: gpg --decrypt and gpg --verify")
    delivered = sorted((workspace / "partners-sftp").rglob("*.pgp"))
    if len(delivered) < 2:
        print(f"    FAILED: expected a delivery per flow, found {len(delivered)}")
        return 1
    for path in delivered:
        plaintext, status = gpg.decrypt_with_status(path)
        rows = plaintext.decode().splitlines()
        signer = signed_by(status)
        print(f"    {path.relative_to(workspace)}: {len(rows) - 1} rows; columns: {rows[0]}")
        if signer != signing:
            print(f"    FAILED: gpg reports no good signature from the sender's key {signing} (got {signer})")
            return 1
        print(f"      gpg: good signature from the sender's pinned key {signer}")
    for manifest in sorted((workspace / "partners-sftp").rglob("*.manifest.json")):
        try:
            signer = signed_by(gpg.verify_detached(manifest.with_name(manifest.name + ".asc"), manifest))
        except GpgError as exc:
            print(f"    FAILED: {manifest.name}: {exc}")
            return 1
        print(f"    {manifest.relative_to(workspace)}: gpg --verify: good signature from {signer}")

    verify = subprocess.run([sys.executable, "-m", "transfers", "ledger", "verify"], env=env,
                            capture_output=True, text=True)
    print(f"    {verify.stdout.strip() or verify.stderr.strip()}")
    reports = sorted((state / "reports").rglob("*.html"))

    say("writing the IG officer's evidence: the disclosure report and the signed-agreement document")
    ig_dir = workspace / "ig"
    agreement_doc = workspace / "ig" / "mash-referrals-agreement.html"
    ig_dir.mkdir(exist_ok=True)
    for command in (["report", "ig", "--from", logical_date.isoformat(), "--to", today.isoformat(), "--out", str(ig_dir)],
                    ["agreement", "render", "mash-referrals", "--format", "html", "--out", str(agreement_doc)]):
        done = subprocess.run([sys.executable, "-m", "transfers", *command], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"    FAILED: transfers {' '.join(command[:2])}: {done.stderr.strip()[-500:]}")
            return 1
    print()
    say("done. Where to look:")
    print(f"  delivered (signed and encrypted) files: {workspace / 'partners-sftp'}/<partner>/inbound/...")
    for path in delivered:
        print(f"      {path}")
    print(f"  signed: gpg reports a good signature from the sender's pinned key {signing} on every file and "
          "on each manifest (<base>.manifest.json.asc)")
    print("  quality reports for data owners:")
    for path in reports:
        print(f"      {path}")
    print("  for the IG officer (disclosures, shares without consent, retention; the agreement as signed):")
    for path in sorted(ig_dir.glob("*.html")):
        print(f"      {path}")
    print(f"  disclosure ledger: {state / 'ledger.db'}  (check it: TRANSFERS_HOME={state} uv run transfers ledger verify)")
    print("  explore with the CLI, on the demo's settings (the partners' SFTP stand-ins have stopped):")
    print(f"      set -a; . {env_file}; set +a")
    print("      uv run transfers report quality mash-referrals.B")
    print("      uv run transfers subject history <an NHS number from var/demo/sources/trust-exports/ed/>")
    print("      uv run transfers purge --dry-run --now <a date a few weeks on>")
    print("  decrypt a delivery as the recipient (gpg names the signer), and check a manifest's signature:")
    print(f"      GNUPGHOME={gpg.path} gpg --decrypt {delivered[0]}")
    print(f"      GNUPGHOME={gpg.path} gpg --verify <a delivered .manifest.json.asc> <its .manifest.json>")
    return 0 if verify.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
