"""Tier 2 sign-off (``transfers.agreement.signoff``) with keys made by the real ``gpg``: sign, verify, block, re-sign."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from transfers.agreement import load_config
from transfers.agreement.signoff import require_signoff, sign_agreement, signature_path, signoffs
from transfers.crypto import load_own_signing_key
from transfers.errors import AgreementNotSigned, KeyRefused
from transfers.settings import PROJECT_ROOT

PARTNERS = ("rotherham-childrens-services", "south-yorkshire-police", "rotherham-nhs-ft")


@pytest.fixture
def workspace(tmp_path, gpg_home):
    """A config copy whose three partners each have their own signing key (public in keys/, private returned)."""
    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    keys = tmp_path / "keys"
    keys.mkdir()
    protocol_path = config_dir / "protocol.yaml"
    protocol = yaml.safe_load(protocol_path.read_text())
    secrets = {}
    for partner in PARTNERS:
        fpr = gpg_home.generate_key(f"{partner} (test) <{partner}@example.invalid>", algo="cv25519",
                                    encryption_subkey=False)
        gpg_home.export_public(fpr, keys / f"{partner}.asc")
        secrets[partner] = load_own_signing_key(gpg_home.export_secret(fpr), fpr)
        next(s for s in protocol["signatories"] if s["id"] == partner)["signing_fingerprint"] = fpr
    protocol_path.write_text(yaml.safe_dump(protocol, sort_keys=False))
    return config_dir, keys, secrets


def _loaded(config_dir: Path):
    config = load_config(config_dir)
    return config.agreement("mash-referrals"), config.protocol


def _sign(config_dir, key, partner=None):
    loaded, protocol = _loaded(config_dir)
    return sign_agreement(loaded.path, loaded.agreement, protocol, key, partner)


@pytest.mark.integration
def test_signed_by_every_partner_verifies(workspace, gpg_home):
    config_dir, keys, secrets = workspace
    for partner in PARTNERS:
        assert _sign(config_dir, secrets[partner]) == (
            partner, config_dir / "agreements" / f"mash-referrals.yaml.{partner}.asc")
    loaded, protocol = _loaded(config_dir)
    found = require_signoff(loaded.path, loaded.agreement, protocol, keys)
    assert [s.partner for s in found if s.signed] == list(loaded.agreement.partners)
    assert {s.fingerprint for s in found} == {k.fingerprint for k in secrets.values()}
    for partner in PARTNERS:  # gpg agrees, by hand
        gpg_home.verify_detached(signature_path(loaded.path, partner), loaded.path)


@pytest.mark.integration
def test_a_changed_byte_blocks_naming_who_has_not_signed_the_new_version(workspace):
    config_dir, keys, secrets = workspace
    for partner in PARTNERS:
        _sign(config_dir, secrets[partner])
    loaded, _ = _loaded(config_dir)
    loaded.path.write_bytes(loaded.path.read_bytes() + b"\n")  # one byte: a new version of the text
    _sign(config_dir, secrets["south-yorkshire-police"])  # one partner signs the new text
    loaded, protocol = _loaded(config_dir)
    with pytest.raises(AgreementNotSigned) as caught:
        require_signoff(loaded.path, loaded.agreement, protocol, keys)
    assert caught.value.unsigned == ("rotherham-childrens-services", "rotherham-nhs-ft")
    assert caught.value.agreement == "mash-referrals" and caught.value.version == "1.1"
    message = str(caught.value)
    assert "mash-referrals version 1.1" in message
    assert "not signed by rotherham-childrens-services, rotherham-nhs-ft " in message
    assert caught.value.exit_code == 1


@pytest.mark.integration
def test_a_signature_by_a_key_that_is_not_the_partners_pinned_key_does_not_count(workspace):
    config_dir, keys, secrets = workspace
    for partner in PARTNERS:
        _sign(config_dir, secrets[partner])
    loaded, protocol = _loaded(config_dir)
    # The police's signature file now holds one made by the NHS trust's key.
    nhs = signature_path(loaded.path, "rotherham-nhs-ft")
    shutil.copyfile(nhs, signature_path(loaded.path, "south-yorkshire-police"))
    found = {s.partner: s for s in signoffs(loaded.path, loaded.agreement, protocol, keys)}
    assert not found["south-yorkshire-police"].signed and found["rotherham-nhs-ft"].signed
    with pytest.raises(AgreementNotSigned) as caught:
        require_signoff(loaded.path, loaded.agreement, protocol, keys)
    assert caught.value.unsigned == ("south-yorkshire-police",)
    # Nor may a key sign as a partner it is not pinned for.
    with pytest.raises(KeyRefused, match=secrets["rotherham-nhs-ft"].fingerprint):
        _sign(config_dir, secrets["rotherham-nhs-ft"], "south-yorkshire-police")


@pytest.mark.integration
def test_resigning_replaces_that_partners_signature(workspace):
    config_dir, keys, secrets = workspace
    for partner in PARTNERS:
        _sign(config_dir, secrets[partner])
    loaded, _ = _loaded(config_dir)
    path = signature_path(loaded.path, "rotherham-nhs-ft")
    police = signature_path(loaded.path, "south-yorkshire-police").read_bytes()
    loaded.path.write_text(loaded.path.read_text().replace('version: "1.1"', 'version: "1.2"'))
    old = path.read_bytes()
    for partner in PARTNERS:
        _sign(config_dir, secrets[partner])
    assert path.read_bytes() != old and signature_path(loaded.path, "south-yorkshire-police").read_bytes() != police
    assert sorted(p.name for p in loaded.path.parent.glob("*.asc")) == sorted(
        f"mash-referrals.yaml.{p}.asc" for p in PARTNERS)  # one file per partner, replaced, no debris
    loaded, protocol = _loaded(config_dir)
    assert loaded.agreement.version == "1.2"
    require_signoff(loaded.path, loaded.agreement, protocol, keys)


@pytest.mark.integration
def test_a_key_pinned_for_no_partner_cannot_sign(workspace, gpg_home):
    config_dir, _, _ = workspace
    fpr = gpg_home.generate_key("stranger <x@example.invalid>", algo="cv25519", encryption_subkey=False)
    stranger = load_own_signing_key(gpg_home.export_secret(fpr), fpr)
    with pytest.raises(KeyRefused, match=f"signing key {fpr} is not the signing_fingerprint pinned for any partner"):
        _sign(config_dir, stranger)


def test_every_partner_needs_a_signing_fingerprint(tmp_path):
    from tests.support.config_edits import copy_config, problems

    config_dir = copy_config(tmp_path)
    protocol_path = config_dir / "protocol.yaml"
    protocol = yaml.safe_load(protocol_path.read_text())
    next(s for s in protocol["signatories"] if s["id"] == "south-yorkshire-police").pop("signing_fingerprint")
    protocol_path.write_text(yaml.safe_dump(protocol, sort_keys=False))
    assert "'south-yorkshire-police' is a partner of mash-referrals and signs it, but has no signing_fingerprint" \
        in problems(config_dir)


@pytest.mark.integration
def test_resign_sample_gives_each_partner_a_new_key_and_signs_the_edited_sample(tmp_path):
    from transfers.devkit.signoff import resign_sample

    config_dir, keys = tmp_path / "config", tmp_path / "keys"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    shutil.copytree(PROJECT_ROOT / "keys", keys)
    old = {p: load_config(config_dir).protocol.signatory(p).signing_fingerprint for p in PARTNERS}
    path = config_dir / "agreements" / "mash-referrals.yaml"
    path.write_text(path.read_text() + "# edited\n")
    loaded, protocol = _loaded(config_dir)
    with pytest.raises(AgreementNotSigned):
        require_signoff(loaded.path, loaded.agreement, protocol, keys)

    assert sorted(p for _, p, _ in resign_sample(config_dir, keys)) == sorted(PARTNERS)
    loaded, protocol = _loaded(config_dir)
    require_signoff(loaded.path, loaded.agreement, protocol, keys)
    assert all(protocol.signatory(p).signing_fingerprint != old[p] for p in PARTNERS)
    assert "# Tier 1" in (config_dir / "protocol.yaml").read_text()  # a text edit: the comments stay
