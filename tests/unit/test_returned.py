"""Reading a signed document a recipient returned into ``<remote_dir>/receipts/``, over the in-memory SFTP fake."""

from __future__ import annotations

import pytest

from tests.support.sftp_fake import FakeSftp, fake_session
from transfers.agreement import load_config
from transfers.errors import CertificateInvalid
from transfers.ledger.records import Disclosure
from transfers.returned import MAX_DOCUMENT_BYTES, read_signed, returns_dir, returns_session
from transfers.settings import PROJECT_ROOT, Settings


@pytest.fixture
def recipient():
    return load_config(PROJECT_ROOT / "config").flow("mash-referrals.A").flow.to[0]


def test_the_folder_is_receipts_under_where_the_delivery_went_as_recorded(recipient):
    assert returns_dir(Disclosure(agreement="a", remote_dir="old/place"), recipient) == "old/place/receipts"
    assert returns_dir(Disclosure(agreement="a"), recipient) == f"{recipient.path}/receipts"
    assert returns_dir(Disclosure(agreement="a", remote_dir="."), recipient) == "receipts"


def test_the_document_then_its_signature_and_none_for_what_is_not_there():
    sftp = FakeSftp(files={"in/receipts/x.json": b"{}", "in/receipts/x.json.asc": b"sig"})
    session = fake_session(sftp)
    assert read_signed(session, "in/receipts", "x.json", what="w", error=CertificateInvalid) == (b"{}", b"sig")
    assert [c for c in sftp.calls if c[0].startswith("open")] == [("open:rb", "in/receipts/x.json"),
                                                                  ("open:rb", "in/receipts/x.json.asc")]
    sftp.files.pop("in/receipts/x.json.asc")
    assert read_signed(session, "in/receipts", "x.json", what="w", error=CertificateInvalid) == (b"{}", None)
    sftp.calls.clear()
    assert read_signed(session, "in/receipts", "y.json", what="w", error=CertificateInvalid) == (None, None)
    assert not any(path.endswith(".asc") for _method, path in sftp.calls)  # no document: its signature is not read


def test_a_file_larger_than_any_document_is_not_read():
    sftp = FakeSftp(files={"r/x.json": b"0" * (MAX_DOCUMENT_BYTES + 1)})
    with pytest.raises(CertificateInvalid, match="larger than any destruction certificate"):
        read_signed(fake_session(sftp), "r", "x.json", what="destruction certificate", error=CertificateInvalid)
    assert ("open:rb", "r/x.json") not in sftp.calls


def test_a_given_session_is_used_without_resolving_a_connection(recipient, tmp_path):
    session = fake_session()

    def nothing(conn_id: str):
        raise AssertionError(conn_id)

    with returns_session(Settings(home=tmp_path), nothing, recipient, session) as opened:
        assert opened is session
