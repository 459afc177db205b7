"""The remote mailbox's rules over an in-memory SFTP server: fetch, return a receipt, collect, the cache."""

from __future__ import annotations

import stat
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from tests.support.sftp_fake import FakeSftp, _FakeFile, fake_session
from transfers.agreement import load_config, receiving_flows
from transfers.connections import ConnInfo
from transfers.errors import ConfigError, DeliveryPending, SecretMissing
from transfers.receive.mailbox import Mailbox, collect, fetch, probe, return_receipt
from transfers.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DIR = "inbound/mash"
BASE = "mash-referrals_A_2026-11-20"
MANIFEST = f"{BASE}.manifest.json"
RECEIPT = f"{BASE}.receipt.json"


def _delivery(**extra: bytes) -> dict[str, bytes]:
    files = {
        f"{DIR}/{BASE}.part-0001.csv.pgp": b"p1" * 40_000,  # over one 32 KiB chunk
        f"{DIR}/{BASE}.part-0002.csv.pgp": b"p2",
        f"{DIR}/{MANIFEST}.asc": b"sig",
        f"{DIR}/{MANIFEST}": b"{}",
    }
    return files | extra


class _CountingFile(_FakeFile):
    biggest = 0

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        assert size > 0, "a whole-file read: memory would grow with the file"
        data = super().read(size)
        _CountingFile.biggest = max(_CountingFile.biggest, len(data))
        return data


class _ChunkedSftp(FakeSftp):
    def open(self, filename: str, mode: str = "r", bufsize: int = -1) -> _FakeFile:
        opened = super().open(filename, mode, bufsize)
        return _CountingFile(self, opened._path) if "r" in mode else opened


def test_a_complete_delivery_is_fetched_encrypted_files_only_into_a_private_cache(tmp_path):
    server = _ChunkedSftp(files=_delivery(**{
        f"{DIR}/.{BASE}.part-0003.csv.pgp.partial": b"half",  # still being uploaded by the sender
        f"{DIR}/mash-referrals_A_2026-11-21.manifest.json": b"{}",  # another day's
        f"{DIR}/{BASE}.notes.txt": b"not ours to take",
    }))
    cache = tmp_path / "home" / "inbox-cache" / "x"
    cache.mkdir(parents=True)
    (cache / f"{BASE}.part-0009.csv.pgp").write_bytes(b"left by a killed attempt")

    fetched = fetch(fake_session(server, remote_dir=DIR), BASE, cache)

    assert sorted(p.name for p in fetched) == sorted(p.name for p in cache.iterdir()) == sorted(
        [f"{BASE}.part-0001.csv.pgp", f"{BASE}.part-0002.csv.pgp", MANIFEST, f"{MANIFEST}.asc"])
    assert (cache / f"{BASE}.part-0001.csv.pgp").read_bytes() == server.files[f"{DIR}/{BASE}.part-0001.csv.pgp"]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in fetched} == {0o600}
    assert 0 < _CountingFile.biggest <= 32 * 1024
    assert not (cache / "receipts").exists()  # none on the mailbox yet


@pytest.mark.parametrize("missing", [MANIFEST, f"{MANIFEST}.asc"])
def test_without_the_manifest_and_its_signature_the_delivery_is_pending_and_nothing_is_downloaded(tmp_path, missing):
    files = _delivery()
    del files[f"{DIR}/{missing}"]
    server = FakeSftp(files=files)

    with pytest.raises(DeliveryPending, match=f"sftp://sftp.example:22/{DIR}: no complete delivery {BASE}"):
        fetch(fake_session(server, remote_dir=DIR), BASE, tmp_path / "cache")

    assert not (tmp_path / "cache").exists()
    assert not [c for c in server.calls if c[0].startswith("open")]


def test_our_receipt_already_on_the_mailbox_is_fetched_with_the_delivery_a_half_one_is_not(tmp_path):
    server = FakeSftp(files=_delivery(**{f"{DIR}/receipts/{RECEIPT}": b"r", f"{DIR}/receipts/{RECEIPT}.asc": b"s"}))
    fetch(fake_session(server, remote_dir=DIR), BASE, tmp_path / "a")
    assert (tmp_path / "a" / "receipts" / RECEIPT).read_bytes() == b"r"
    assert (tmp_path / "a" / "receipts" / f"{RECEIPT}.asc").read_bytes() == b"s"

    del server.files[f"{DIR}/receipts/{RECEIPT}"]
    fetch(fake_session(server, remote_dir=DIR), BASE, tmp_path / "b")
    assert not (tmp_path / "b" / "receipts").exists()


def _receipt(tmp_path: Path, data: bytes = b'{"status": "accepted"}') -> Path:
    path = tmp_path / "receipts" / RECEIPT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(RECEIPT + ".asc").write_bytes(b"signature of " + data)
    path.write_bytes(data)
    return path


def test_the_receipt_goes_up_signature_first_under_temporary_names_and_again_changes_nothing(tmp_path):
    server = FakeSftp(files=_delivery())
    receipt = _receipt(tmp_path)

    return_receipt(fake_session(server, remote_dir=DIR), receipt)

    assert server.files[f"{DIR}/receipts/{RECEIPT}"] == receipt.read_bytes()
    assert server.files[f"{DIR}/receipts/{RECEIPT}.asc"] == receipt.with_name(RECEIPT + ".asc").read_bytes()
    renames = [path for method, path in server.calls if method == "rename"]
    assert renames == [f"{DIR}/receipts/.{RECEIPT}.asc.partial", f"{DIR}/receipts/.{RECEIPT}.partial"]
    server.calls.clear()
    before = dict(server.files)

    return_receipt(fake_session(server, remote_dir=DIR), receipt)  # a retry after a crash

    assert not [c for c in server.calls if c[0] == "rename" or c[0].startswith("open:w")]
    assert server.files == before


def test_a_different_receipt_of_ours_on_the_mailbox_is_replaced(tmp_path):
    server = FakeSftp(files={f"{DIR}/receipts/{RECEIPT}.asc": b"half of an earlier attempt"})
    receipt = _receipt(tmp_path, b'{"status": "rejected"}')

    return_receipt(fake_session(server, remote_dir=DIR), receipt)

    assert server.files[f"{DIR}/receipts/{RECEIPT}.asc"] == b'signature of {"status": "rejected"}'
    assert server.files[f"{DIR}/receipts/{RECEIPT}"] == b'{"status": "rejected"}'
    assert not [p for p in server.files if p.endswith(".partial")]


def test_collect_takes_the_delivery_off_the_mailbox_and_nothing_else(tmp_path):
    others = {f"{DIR}/.{BASE}.part-0003.csv.pgp.partial": b"x", f"{DIR}/receipts/{RECEIPT}": b"r",
              f"{DIR}/mash-referrals_A_2026-11-21.manifest.json": b"{}", f"{DIR}/{BASE}.notes.txt": b"n"}
    server = FakeSftp(files=_delivery(**others))

    removed = collect(fake_session(server, remote_dir=DIR), BASE)

    assert len(removed) == 4 and set(server.files) == set(others)
    assert collect(fake_session(server, remote_dir=DIR), BASE) == []


def test_probe_lists_the_flows_directory_or_says_it_is_not_there_yet():
    assert "is listable (4 entries)" in probe(fake_session(FakeSftp(files=_delivery()), remote_dir=DIR))
    assert "does not exist yet" in probe(fake_session(FakeSftp(), remote_dir=DIR))


def _mailbox(tmp_path: Path, server: FakeSftp) -> Mailbox:
    session = fake_session(server, remote_dir=DIR)

    @contextmanager
    def opener(target):
        assert target is session.target
        yield session

    return Mailbox(session.target, BASE, tmp_path / "cache", opener)


def test_the_cache_is_gone_when_the_receive_ends_however_it_ends(tmp_path):
    box = _mailbox(tmp_path, FakeSftp(files=_delivery()))
    with box.fetched() as pending:
        assert pending is None and (box.cache / MANIFEST).is_file()
    assert not box.cache.exists()

    with pytest.raises(RuntimeError), box.fetched():
        assert (box.cache / MANIFEST).is_file()
        raise RuntimeError("the load failed")
    assert not box.cache.exists()

    empty = _mailbox(tmp_path, FakeSftp())
    with empty.fetched() as pending:
        assert isinstance(pending, DeliveryPending)
    assert not empty.cache.exists()


@pytest.fixture(scope="module")
def inbound():
    (found,) = receiving_flows(load_config(ROOT / "config"), "south-yorkshire-police")
    return found


def test_the_mailbox_is_the_named_connection_at_the_flows_path_with_its_host_key_pinned(tmp_path, inbound):
    key = fake_session().target.host_key
    conns = {"syp_mailbox": ConnInfo("syp_mailbox", "sftp", host="mailbox.example", port=2222, login="syp",
                                     extra={"host_key": key})}

    def lookup(conn_id: str) -> ConnInfo:
        if conn_id not in conns:
            raise SecretMissing(f"connection {conn_id!r} is not defined")
        return conns[conn_id]

    settings = Settings(home=tmp_path, mailbox="syp_mailbox", sftp_timeout=7)
    box = Mailbox.for_flow(settings, lookup, inbound.recipient, inbound.ref, date(2026, 11, 20))

    assert (box.target.address, box.target.remote_dir, box.target.host_key, box.target.timeout) == (
        "mailbox.example:2222", DIR, key, 7)
    assert box.base == BASE and box.cache == tmp_path / "inbox-cache" / "mash-referrals" / "A" / "2026-11-20"
    conns["syp_mailbox"] = ConnInfo("syp_mailbox", "sftp", host="mailbox.example", login="syp")
    with pytest.raises(ConfigError, match="extra.host_key is missing"):
        Mailbox.for_flow(settings, lookup, inbound.recipient, inbound.ref, date(2026, 11, 20))
    with pytest.raises(ConfigError, match="TRANSFERS_MAILBOX is not set"):
        Mailbox.for_flow(Settings(home=tmp_path), lookup, inbound.recipient, inbound.ref, date(2026, 11, 20))
