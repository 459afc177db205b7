"""Uploads leave no debris and never overwrite, against the real ``sshd``.

A cut upload's temporary file is removed by the retry and by remote purge; a
file that appears under the final name while we upload is never replaced; a
data file whose manifest did not follow is covered by a ledger intent that the
retry reconciles into exactly one disclosure.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.stall_proxy import StallingProxy, finishes_within
from transfers.delivery import deliver_file, discard_partial, open_sftp
from transfers.errors import DeliveryConflict, DeliveryUnavailable

pytestmark = pytest.mark.integration


@pytest.fixture
def remote_dir() -> str:
    return f"t-{uuid.uuid4().hex[:8]}/inbound"


def names(root, remote_dir: str) -> list[str]:
    path = root / remote_dir
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


class _RaceAtRename:
    """The real SFTP client, except that just before it renames, another party's file lands.

    Only the timing is staged: the file is written straight into the server's
    directory (as the recipient's own process would) and the rename is the real
    request to the real ``sshd``.
    """

    def __init__(self, sftp, land) -> None:
        self._sftp, self._land = sftp, land

    def __getattr__(self, name: str):
        return getattr(self._sftp, name)

    def rename(self, old: str, new: str) -> None:
        self._land()
        return self._sftp.rename(old, new)

    def posix_rename(self, old: str, new: str) -> None:
        self._land()
        return self._sftp.posix_rename(old, new)


def test_a_file_that_appears_between_the_check_and_the_rename_is_not_overwritten(sshd, remote_dir, tmp_path):
    ours = tmp_path / "x.csv.pgp"
    ours.write_bytes(os.urandom(20_000))
    theirs = sshd.root / remote_dir / "x.csv.pgp"

    with open_sftp(sshd.target(remote_dir)) as session:
        session.sftp = _RaceAtRename(session.sftp, lambda: theirs.write_bytes(b"the recipient's own file"))
        with pytest.raises(DeliveryConflict, match=f"{sshd.port}/{remote_dir}/x.csv.pgp: a file appeared"):
            deliver_file(session, ours, "x.csv.pgp")

    assert theirs.read_bytes() == b"the recipient's own file"
    assert names(sshd.root, remote_dir) == ["x.csv.pgp"]  # and our temporary upload is gone


def test_a_cut_upload_leaves_debris_that_the_retry_removes(sshd, remote_dir, tmp_path):
    payload = os.urandom(4 * 1024 * 1024)
    path = tmp_path / "x.csv.pgp"
    path.write_bytes(payload)
    with StallingProxy(upstream=(sshd.host, sshd.port)) as proxy:
        def cut() -> None:
            with open_sftp(sshd.target(remote_dir, port=proxy.port, timeout=2)) as session:
                proxy.stall_after(512 * 1024)
                deliver_file(session, path, "x.csv.pgp")

        assert isinstance(finishes_within(30, cut), DeliveryUnavailable)
        assert names(sshd.root, remote_dir) == [".x.csv.pgp.partial"]

        with open_sftp(sshd.target(remote_dir)) as session:
            assert deliver_file(session, path, "x.csv.pgp").status == "delivered"
    assert names(sshd.root, remote_dir) == ["x.csv.pgp"]
    assert (sshd.root / remote_dir / "x.csv.pgp").read_bytes() == payload


def test_a_reconciled_retry_removes_debris_left_beside_the_delivered_file(sshd, remote_dir, tmp_path):
    path = tmp_path / "x.csv.pgp"
    path.write_bytes(os.urandom(5_000))
    with open_sftp(sshd.target(remote_dir)) as session:
        deliver_file(session, path, "x.csv.pgp")
    (sshd.root / remote_dir / ".x.csv.pgp.partial").write_bytes(b"half an upl")

    with open_sftp(sshd.target(remote_dir)) as session:
        assert deliver_file(session, path, "x.csv.pgp").status == "reconciled"

    assert names(sshd.root, remote_dir) == ["x.csv.pgp"]


def test_discard_partial_removes_only_the_temporary_upload(sshd, remote_dir):
    (sshd.root / remote_dir).mkdir(parents=True)
    (sshd.root / remote_dir / "x.csv.pgp").write_bytes(b"delivered")
    (sshd.root / remote_dir / ".x.csv.pgp.partial").write_bytes(b"half")

    with open_sftp(sshd.target()) as session:
        first = discard_partial(session, f"{remote_dir}/x.csv.pgp")
        again = discard_partial(session, f"{remote_dir}/x.csv.pgp")

    assert (first, again) == (True, False)
    assert names(sshd.root, remote_dir) == ["x.csv.pgp"]


def _package(world, partner: str):
    return world.packaged("mash-referrals.A", partner)


def test_a_failed_manifest_upload_leaves_an_intent_the_retry_reconciles_into_one_disclosure(world, sshd):
    from transfers.steps.cleanup import cleanup
    from transfers.steps.deliver import deliver

    partner = "south-yorkshire-police"
    run, ledger, target = _package(world, partner)
    resolvers, recipient = world.resolvers(), run.recipient(partner)
    data_name = f"{run.base_name}.csv.pgp"
    manifest_name = f"{run.base_name}.manifest.json"
    signature_name = f"{manifest_name}.asc"
    inbound = world.remote_root / "inbound" / "mash"
    # The server fails the manifest's upload (its temporary name is taken by a directory it will not remove).
    blocker = inbound / f".{manifest_name}.partial"
    blocker.mkdir(parents=True)

    with pytest.raises(DeliveryUnavailable, match=manifest_name):
        deliver(run, resolvers, ledger, recipient)

    # The data file reached the recipient without its manifest; the ledger says it may be there.
    assert data_name in world.remote_names("inbound/mash")
    assert manifest_name not in world.remote_names("inbound/mash")
    assert list(ledger.entries(kind="disclosure")) == []
    intents = list(ledger.entries(kind="delivery-intent", flow=run.ref.key))
    assert len(intents) == 1
    assert intents[0].recipient == partner
    assert intents[0].payload["disclosure_key"] == run.disclosure_key(run.recipient(partner))
    assert f"{target.remote_dir}/{data_name}" in [f["remote_path"] for f in intents[0].payload["files"]]

    blocker.rmdir()  # the server is well again
    result = deliver(run, resolvers, ledger, recipient)
    again = deliver(run, resolvers, ledger, recipient)
    cleanup(run, resolvers, ledger)

    assert result["status"] == "delivered" and again["status"] == "already-delivered"
    disclosures = list(ledger.entries(kind="disclosure", flow=run.ref.key))
    assert len(disclosures) == 1
    statuses = {f["remote_path"].rsplit("/", 1)[1]: f["status"] for f in disclosures[0].payload["files"]}
    # The manifest's signature had landed too (it goes just before the manifest): reconciled like the data.
    assert statuses == {data_name: "reconciled", signature_name: "reconciled", manifest_name: "delivered"}
    assert len(list(ledger.entries(kind="delivery-intent"))) == 1  # recorded once, not per attempt
    assert world.remote_names("inbound/mash") == sorted([data_name, signature_name, manifest_name])


def test_remote_purge_removes_files_of_an_unfinished_delivery_and_their_debris(world, sshd):
    from transfers.retention import execute_purge, plan_purge
    from transfers.steps.cleanup import cleanup
    from transfers.steps.deliver import deliver

    partner = "south-yorkshire-police"
    run, ledger, target = _package(world, partner)
    resolvers, recipient = world.resolvers(), run.recipient(partner)
    manifest_name = f"{run.base_name}.manifest.json"
    inbound = world.remote_root / "inbound" / "mash"
    blocker = inbound / f".{manifest_name}.partial"
    blocker.mkdir(parents=True)
    with pytest.raises(DeliveryUnavailable):
        deliver(run, resolvers, ledger, recipient)
    cleanup(run, resolvers, ledger)
    blocker.rmdir()
    # No retry ever comes; a cut attempt's temporary upload sits beside the data file.
    data_name = f"{run.base_name}.csv.pgp"
    (inbound / f".{data_name}.partial").write_bytes(b"half an upl")
    assert run.ref.flow.retention.remote.sender_may_remove  # the sample flow lets the sender remove its copies

    later = datetime.now(UTC) + timedelta(days=3650)
    items = [i for i in plan_purge(world.settings, world.config, ledger, now=later) if i.place == "remote"]
    report = execute_purge(items, world.settings, world.config, ledger, world.resolvers().connection, now=later)

    assert report.failed == []
    assert data_name in {i.path.rsplit("/", 1)[1] for i in items}
    assert world.remote_names("inbound/mash") == []
