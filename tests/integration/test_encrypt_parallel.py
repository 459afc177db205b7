"""The encrypt step's parts built and encrypted by worker processes, against real PostgreSQL, gpg and the receive side.

What leaves is exactly the prepared rows, in order, whatever the batches of the staging, the number of
workers or the compression; a worker that fails leaves no part and stops the step with its own error.
"""

from __future__ import annotations

import io
import json
import logging

import pandas as pd
import pytest

from tests.integration.conftest import read_delivery
from transfers.agreement.signoff import agreement_sha256
from transfers.crypto import DECRYPTION_KEY_VAR, load_signing_key, own_decryption_key
from transfers.errors import ConfigError, SecretMissing, WorkspaceFull
from transfers.receive.verify import delivery_base, open_delivery
from transfers.staging import new_staging_key

pytestmark = pytest.mark.integration

FLOW, ME = "mash-referrals.A", "south-yorkshire-police"


def _prepared(world, batch_rows: int | None = None):
    """The sender's steps up to (not including) encrypt; the prepared stage cut into ``batch_rows`` batches."""
    from transfers.steps.check_agreement import check_agreement
    from transfers.steps.extract import extract
    from transfers.steps.prepare import prepare
    from transfers.steps.quality import quality

    run, ledger, resolvers = world.run(FLOW), world.settings.open_ledger(), world.resolvers()
    for step in (check_agreement, extract, quality, prepare):
        step(run, resolvers, ledger)
    if batch_rows:
        whole = pd.concat(list(run.staging.read_batches("prepared")))
        columns = run.staging.columns("prepared")
        run.staging.write_batches("prepared", [whole.iloc[i:i + batch_rows] for i in range(0, len(whole), batch_rows)],
                                  columns=columns)
    return run, ledger, resolvers, run.recipient(ME)


def _expected_csv(run) -> str:
    """The prepared rows as one CSV, as the recipient should read them back."""
    frame = pd.concat(list(run.staging.read_batches("prepared")))
    if run.ref.flow.csv.formula_escape:
        from transfers.csv_escape import escape_frame

        frame = escape_frame(frame)
    return frame.to_csv(index=False, columns=run.staging.columns("prepared"))


def _joined(gpg_partner, paths) -> str:
    texts = [gpg_partner.home.decrypt(p).decode("utf-8") for p in paths]
    return texts[0] + "".join(t.split("\n", 1)[1] for t in texts[1:])


def test_parts_encrypted_in_parallel_decrypt_with_gpg_to_exactly_the_prepared_rows_in_order(world, gpg_partner,
                                                                                             caplog):
    from transfers.steps.encrypt import encrypt

    caplog.set_level(logging.DEBUG, logger="transfers.steps.encrypt")

    world.settings = world.settings.model_copy(update={"delivery_max_rows": 6, "encrypt_workers": 2})
    run, ledger, resolvers, recipient = _prepared(world, batch_rows=4)  # 40 rows, batches of 4, parts of 6
    expected = _expected_csv(run)

    assert encrypt(run, resolvers, ledger, recipient) == {"files": 7, "rows": 40, "reused": False}

    outbox = run.outbox_dir(recipient)
    manifest = json.loads((outbox / f"{run.base_name}.manifest.json").read_text())
    names = [f"{run.base_name}_part{i:03d}of007.csv.pgp" for i in range(1, 8)]
    assert [f["name"] for f in manifest["files"]] == names
    assert [f["rows"] for f in manifest["files"]] == [6] * 6 + [4]
    assert list(manifest["files"][0]) == ["name", "size", "sha256", "rows"]
    assert _joined(gpg_partner, [outbox / n for n in names]) == expected
    # One line per part (at debug), naming it with its rows and size, and no value of any row.
    lines = [str(r.msg) for r in caplog.records if isinstance(r.msg, dict) and r.msg["event"] == "part encrypted"]
    assert len(lines) == 7 and {n for n in names if any(n in line for line in lines)} == set(names)
    first_ids = pd.read_csv(io.StringIO(expected), dtype=str)["referral_id"]
    assert not any(ref in line for line in lines for ref in first_ids)


def test_one_worker_and_two_make_the_same_parts_of_the_same_rows(world, gpg_partner):
    from transfers.steps.encrypt import encrypt

    made = {}
    for workers in (1, 2):
        world.settings = world.settings.model_copy(update={"delivery_max_rows": 15, "encrypt_workers": workers,
                                                           "home": world.root / f"home-{workers}"})
        run, ledger, resolvers, recipient = _prepared(world, batch_rows=7)
        encrypt(run, resolvers, ledger, recipient)
        outbox = run.outbox_dir(recipient)
        manifest = json.loads((outbox / f"{run.base_name}.manifest.json").read_text())
        made[workers] = ([(f["name"], f["rows"]) for f in manifest["files"]],
                         [gpg_partner.home.decrypt(outbox / f["name"]) for f in manifest["files"]])
    assert made[1] == made[2]
    assert [rows for _, rows in made[2][0]] == [15, 15, 10]


@pytest.mark.parametrize("compression", ["none", "zip", "zlib"])
def test_each_compression_opens_with_gpg_and_with_the_receive_side(world, gpg_partner, gpg_sender, compression):
    world.settings = world.settings.model_copy(update={"delivery_max_rows": 15, "encrypt_workers": 2,
                                                       "compression": compression})
    run, _ledger, _target = world.packaged(FLOW, ME)
    recipient = run.recipient(ME)
    inbox = run.outbox_dir(recipient)
    parts = sorted(inbox.glob("*.pgp"))
    packets = gpg_partner.home.run("--list-packets", str(parts[0])).stdout.decode()
    assert (":compressed packet:" in packets) == (compression != "none")

    secrets = {DECRYPTION_KEY_VAR: gpg_partner.home.export_secret(gpg_partner.fingerprint)}

    def secret(name: str) -> str:
        if name not in secrets:
            raise SecretMissing(f"secret {name!r} is not set")
        return secrets[name]

    delivery = open_delivery(inbox, delivery_base(run.ref, run.logical_date), ref=run.ref, me=ME,
                             logical_date=run.logical_date,
                             own_key=own_decryption_key(secret, ME, recipient.pgp_fingerprint),
                             sender_key=load_signing_key(gpg_sender.public_key_path, gpg_sender.fingerprint),
                             agreement_sha256=agreement_sha256(run.ref.path))
    received = [row for part in delivery.parts() for row in part]
    decrypted = pd.concat([read_delivery(gpg_partner, p) for p in parts])
    assert len(received) == len(decrypted) == 40
    assert [r["referral_id"] for r in received] == list(decrypted["referral_id"])


def test_a_worker_that_cannot_write_its_part_stops_the_step_and_leaves_no_part(world, mounts, caplog):
    from transfers.steps.encrypt import encrypt

    caplog.set_level(logging.DEBUG, logger="transfers.steps.encrypt")

    world.settings = world.settings.model_copy(update={"delivery_max_rows": 15, "encrypt_workers": 2})
    run, ledger, resolvers, recipient = _prepared(world)
    outbox = mounts.tmpfs(run.outbox_dir(recipient), size="8k")  # two pages: two parts fit, the third does not

    with pytest.raises(WorkspaceFull, match=rf"{outbox}: no space left .* the encrypted file {run.base_name}_part"):
        encrypt(run, resolvers, ledger, recipient)

    assert "part encrypted" in caplog.text  # a part was written before the failure...
    assert list(outbox.iterdir()) == []  # ...and removed with the rest: no part, no temporary file, no manifest


def test_a_worker_that_cannot_read_the_staging_stops_the_step_with_the_stagings_error(world):
    from transfers.steps.encrypt import encrypt

    world.settings = world.settings.model_copy(update={"delivery_max_rows": 15, "encrypt_workers": 2})
    run, ledger, resolvers, recipient = _prepared(world)
    world.staging_key = new_staging_key()  # another run's key: the prepared parts do not open with it
    other = world.run(FLOW)

    with pytest.raises(ConfigError, match="staging key"):
        encrypt(other, resolvers, ledger, recipient)

    assert list(other.outbox_dir(recipient).glob("*")) == []
