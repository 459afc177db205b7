"""Every file under config/ loads: the protocol, each agreement, every SQL file it names."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from transfers.agreement import DIMENSIONS, load_config, load_protocol
from transfers.agreement.signoff import signature_path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
TODAY = date(2026, 11, 24)  # inside the sample agreement's in_force .. review_by window

AGREEMENT_FILES = sorted((CONFIG / "agreements").glob("*.y*ml"))


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIG, today=TODAY)


def test_the_whole_config_directory_loads(config):
    assert config.agreements, "config/agreements/ holds no agreement"
    assert {item.path for item in config.agreements} == set(AGREEMENT_FILES)


def test_every_file_under_config_is_yaml_referenced_sql_or_a_partners_signature(config):
    # A stray file (a draft, a backup, a query nobody uses) is a question for a reviewer.
    referenced = {
        (CONFIG / ref.flow.source.query).resolve()
        for ref in config.flows()
        if ref.flow.source.kind == "sql" and ref.flow.source.query
    }
    # Each partner's Tier 2 sign-off: a detached signature beside the agreement file (transfers.agreement.signoff).
    signatures = {signature_path(item.path, partner).resolve()
                  for item in config.agreements for partner in item.agreement.partners}
    expected = {(CONFIG / "protocol.yaml").resolve(), *(p.resolve() for p in AGREEMENT_FILES), *referenced,
                *signatures}
    present = {p.resolve() for p in CONFIG.rglob("*") if p.is_file()}
    assert present == expected


@pytest.mark.parametrize("path", [CONFIG / "protocol.yaml", *AGREEMENT_FILES], ids=lambda p: p.name)
def test_every_yaml_file_is_safe_yaml_mapping(path):
    assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict)


def test_every_referenced_sql_file_exists_and_is_a_single_select(config):
    queries = [ref for ref in config.flows() if ref.flow.source.kind == "sql"]
    assert queries, "the sample has an SQL flow"
    for ref in queries:
        text = (CONFIG / ref.flow.source.query).read_text(encoding="utf-8")
        body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--")).strip()
        assert body.upper().startswith("SELECT"), ref.key
        assert ";" not in body.rstrip(";"), f"{ref.key}: one statement only"
        assert ":ds" in body, f"{ref.key}: bound to the logical date"


def test_the_protocol_lists_the_fourteen_signatories_and_six_characteristics():
    protocol = load_protocol(CONFIG / "protocol.yaml")

    assert len(protocol.signatories) == 14
    assert len({s.id for s in protocol.signatories}) == 14
    assert all(s.signed is not None for s in protocol.signatories)
    assert [c.id for c in protocol.quality_characteristics] == list(DIMENSIONS)
    assert protocol.purposes and protocol.legal_bases and protocol.exceptional_grounds


def test_the_protocol_ids_are_unique():
    protocol = load_protocol(CONFIG / "protocol.yaml")
    for group in (protocol.purposes, protocol.legal_bases, protocol.exceptional_grounds):
        ids = [item.id for item in group]
        assert len(ids) == len(set(ids))


def test_the_sample_has_flows_a_and_b_between_different_partners(config):
    agreement = config.agreement("mash-referrals").agreement
    a, b = agreement.flow("A"), agreement.flow("B")

    assert [f.id for f in agreement.flows] == ["A", "B"]
    assert a.from_ != b.from_
    assert {r.partner for r in a.to}.isdisjoint({r.partner for r in b.to})
    for flow in (a, b):
        assert flow.from_ not in {r.partner for r in flow.to}
        assert set(flow.shared_fields) < set(flow.fields)  # each drops something
    assert agreement.in_force <= TODAY <= agreement.review_by


def test_every_recipient_key_file_is_present(config):
    for ref in config.flows():
        for recipient in ref.flow.to:
            assert (config.keys_dir / recipient.key_file).is_file(), f"{ref.key}: {recipient.key_file}"


def test_every_sender_has_its_pinned_signing_key_in_keys_and_no_private_key_is_there(config):
    # The sample keys/ holds the senders' public signing keys beside the recipients' keys (issue 11).
    from datetime import UTC, datetime

    from transfers.crypto import load_signing_key

    senders = {ref.flow.from_ for ref in config.flows()}
    assert senders == {"rotherham-childrens-services", "rotherham-nhs-ft"}
    for sender in sorted(senders):
        signatory = config.protocol.signatory(sender)
        key = load_signing_key(ROOT / "keys" / signatory.key_file, signatory.signing_fingerprint,
                               now=datetime(2026, 11, 26, tzinfo=UTC))
        assert key.fingerprint == signatory.signing_fingerprint
    for path in (ROOT / "keys").glob("*"):
        assert "PRIVATE KEY" not in path.read_text(errors="replace"), path
