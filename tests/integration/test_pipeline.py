"""A flow run end to end: PostgreSQL or CSV in, real sshd out, real gpg decrypts."""

from __future__ import annotations

import dataclasses

import pytest

from tests.integration.conftest import LOGICAL_DATE, files_containing, read_delivery, sftp_conn
from transfers.devkit import synthetic
from transfers.errors import HostKeyMismatch, KeyRefused
from transfers.pipeline import run_flow
from transfers.privacy import pseudonymise

pytestmark = pytest.mark.integration

AGREED_A = ["referral_id", "nhs_number", "date_of_birth", "postcode", "referral_date", "risk_level", "category"]


def test_flow_a_from_postgresql_delivers_exactly_the_agreed_fields(world, sshd, gpg_partner):
    results = run_flow(world.run("mash-referrals.A"), world.resolvers())

    assert results["status"] == "delivered"
    files = world.delivered("inbound/mash")
    assert [f.name for f in files] == [f"mash-referrals_A_{LOGICAL_DATE}.csv.pgp"]
    frame = read_delivery(gpg_partner, files[0])
    assert list(frame.columns) == AGREED_A
    source = synthetic.referrals(40, LOGICAL_DATE)
    assert len(frame) == len(source)
    # Dropped fields never leave; pseudonymised identifiers never appear in clear.
    plaintext = gpg_partner.home.decrypt(files[0]).decode()
    for number in source["nhs_number"]:
        assert number not in plaintext
    for surname in set(source["surname"]):
        assert surname not in plaintext
    key = world.secrets["mash_pseudonym_key"]
    from transfers.privacy.step import pseudonym_key

    hmac_key = pseudonym_key(world.run("mash-referrals.A"), lambda _n: key)
    assert set(frame["nhs_number"]) == {pseudonymise(n, hmac_key) for n in source["nhs_number"]}
    # Generalised to the declared level: year of birth, postcode district.
    assert all(len(v) == 4 and v.isdigit() for v in frame["date_of_birth"])
    assert all(" " not in v and v.startswith("S6") for v in frame["postcode"])
    # The manifest arrives with the data, listing it.
    assert f"mash-referrals_A_{LOGICAL_DATE}.manifest.json" in world.remote_names("inbound/mash")
    # No temporary upload is left for the recipient to trip over.
    assert not [n for n in world.remote_names("inbound/mash") if n.startswith(".")]


def test_flow_b_from_csv_normalises_identifiers_before_pseudonymising(world, sshd, gpg_partner):
    run_flow(world.run("mash-referrals.B"), world.resolvers())

    files = world.delivered("inbound/ed-attendances")
    frame = read_delivery(gpg_partner, files[0])
    assert list(frame.columns) == ["attendance_id", "nhs_number", "date_of_birth", "postcode", "arrived_at",
                                   "safeguarding_flag"]
    assert "presenting_complaint" not in gpg_partner.home.decrypt(files[0]).decode()
    source = synthetic.ed_attendances(30, LOGICAL_DATE)
    # "999 123 4567" and "9991234567" are one person: one pseudonym.
    from transfers.privacy.step import pseudonym_key

    hmac_key = pseudonym_key(world.run("mash-referrals.B"), lambda _n: world.secrets["mash_pseudonym_key"])
    expected = {pseudonymise(n.replace(" ", ""), hmac_key) for n in source["nhs_number"]}
    assert set(frame["nhs_number"]) == expected


def test_running_the_same_flow_and_date_twice_delivers_once_and_records_one_disclosure(world, sshd):
    first = run_flow(world.run("mash-referrals.A"), world.resolvers())
    files = world.delivered("inbound/mash")
    before = {f: f.stat().st_mtime_ns for f in files}
    second = run_flow(world.run("mash-referrals.A"), world.resolvers())

    assert first["status"] == "delivered"
    assert second["status"] == "already-delivered"
    assert {f: f.stat().st_mtime_ns for f in world.delivered("inbound/mash")} == before
    ledger = world.settings.open_ledger()
    assert len(list(ledger.entries(kind="disclosure", flow="mash-referrals.A"))) == 1


def test_a_crash_after_upload_is_reconciled_not_sent_again(world, sshd):
    """Airflow may re-run a task whose upload finished but whose ledger write did not."""
    from transfers.steps.cleanup import cleanup
    from transfers.steps.deliver import deliver

    run, ledger, target = world.packaged("mash-referrals.A", "south-yorkshire-police")
    recipient = run.recipient("south-yorkshire-police")
    # Simulate the crash: the files reach the server but the ledger never hears of it.
    from transfers.delivery import deliver_file, open_sftp

    outbox = run.outbox_dir(recipient)
    with open_sftp(target) as session:
        for path in sorted(outbox.iterdir()):
            deliver_file(session, path, path.name)

    result = deliver(run, world.resolvers(), ledger, recipient)
    cleanup(run, world.resolvers(), ledger)

    assert result["status"] == "reconciled"
    entries = list(ledger.entries(kind="disclosure", flow="mash-referrals.A"))
    assert len(entries) == 1 and entries[0].payload["status"] == "reconciled"


def test_a_changed_host_key_stops_delivery_and_leaves_nothing_on_the_server(world, sshd):
    world.connections["syp_sftp"] = sftp_conn("syp_sftp", sshd, host_key=sshd.other_host_key_line)

    with pytest.raises(HostKeyMismatch) as caught:
        run_flow(world.run("mash-referrals.A"), world.resolvers())

    assert f"{sshd.host}" in str(caught.value)
    assert world.remote_names("inbound/mash") == []
    assert list(world.settings.open_ledger().entries(kind="disclosure")) == []


def test_a_key_that_is_not_the_pinned_one_is_refused(world, sshd, tmp_path, gpg_sender):
    from transfers.devkit.gpg import GpgHome

    stranger = GpgHome(tmp_path / "stranger")
    fpr = stranger.generate_key("Someone Else <else@example.invalid>", algo="cv25519")
    key_file = stranger.export_public(fpr, world.settings.keys / "south-yorkshire-police.asc")
    # Its signing key stays beside it: the agreement is still signed off, the encryption key is what is wrong.
    key_file.write_text(key_file.read_text() + gpg_sender.public_key_path.read_text())

    with pytest.raises(KeyRefused) as caught:
        run_flow(world.run("mash-referrals.A"), world.resolvers())

    assert "south-yorkshire-police.asc" in str(caught.value)
    assert world.remote_names("inbound/mash") == []


def test_no_plaintext_personal_data_is_left_on_disk_after_success_or_failure(world, sshd):
    source = synthetic.referrals(40, LOGICAL_DATE)
    needles = list(source["nhs_number"]) + list(source["surname"].unique()) + list(source["postcode"])

    run_flow(world.run("mash-referrals.A"), world.resolvers())
    assert files_containing(world.settings.home, needles) == []

    # Fail mid-way: the recipient's server is down when delivery starts.
    world.connections["cs_sftp"] = dataclasses.replace(world.connections["cs_sftp"], port=1)
    from transfers.errors import DeliveryUnavailable

    with pytest.raises(DeliveryUnavailable):
        run_flow(world.run("mash-referrals.B"), world.resolvers())
    ed = synthetic.ed_attendances(30, LOGICAL_DATE)
    needles += [n.replace(" ", "") for n in ed["nhs_number"]] + list(ed["nhs_number"]) + list(ed["postcode"])
    assert files_containing(world.settings.home, needles) == []
    assert not (world.settings.home / "runs" / "mash-referrals" / "B" / LOGICAL_DATE.isoformat() / "extract").exists()


def test_a_run_keeps_its_own_log_without_record_values(world, sshd):
    source = synthetic.referrals(40, LOGICAL_DATE)
    run = world.run("mash-referrals.A")

    run_flow(run, world.resolvers())

    text = run.log_path.read_text()
    for event in ("agreement live", "extracted", "quality checked", "prepared", "encrypted", "delivered"):
        assert event in text
    assert files_containing(run.log_path.parent, list(source["nhs_number"]) + list(source["surname"])) == []


def test_a_host_key_pin_ending_within_30_days_is_a_warning_in_the_deliver_step_s_log(world, sshd, caplog):
    from datetime import UTC, datetime, timedelta

    until = datetime.now(UTC).date() + timedelta(days=10)
    conn = world.connections["cs_sftp"]
    world.connections["cs_sftp"] = dataclasses.replace(conn, extra={
        "host_keys": [{"key": sshd.host_key_line, "until": until.isoformat()}],
        "private_key": conn.extra["private_key"]})

    run_flow(world.run("mash-referrals.B"), world.resolvers())

    [warning] = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "transfers.steps.deliver"]
    assert warning.msg["event"] == "host key pin ending" and warning.msg["host"] == f"{sshd.host}:{sshd.port}"
    assert f"ends on {until} (in 10 days)" in warning.msg["detail"]
    assert world.delivered("inbound/ed-attendances")  # delivered all the same
