"""Tier 2 sign-off end to end (issue 11, item 7): ``transfers agreement sign`` by each partner, then
``validate``, ``run`` and the DAG's first step accept only the version every partner signed.

Each partner gets its own signing key made by the real ``gpg`` here, pinned in the world's
protocol.yaml and published in its keys/<partner>.asc; each signs with its own key as its
``transfers_signing_key`` secret, as three deployments would.
"""

from __future__ import annotations

import pytest
import yaml

from tests.integration.conftest import LOGICAL_DATE
from transfers.agreement import load_config
from transfers.agreement.signoff import signature_path
from transfers.devkit.gpg import signed_by

pytestmark = pytest.mark.integration

PARTNERS = ("rotherham-childrens-services", "south-yorkshire-police", "rotherham-nhs-ft")


@pytest.fixture
def partners(world, gpg_home):
    """Each partner's own signing key: {partner: (fingerprint, armoured private key)}; no signature yet."""
    protocol_path = world.settings.config_dir / "protocol.yaml"
    protocol = yaml.safe_load(protocol_path.read_text())
    keys = {}
    for partner in PARTNERS:
        fpr = gpg_home.generate_key(f"{partner} agreement owner <{partner}@example.invalid>", algo="cv25519",
                                    encryption_subkey=False)
        public = gpg_home.export_public(fpr, world.root / f"{partner}-signing.asc").read_text()
        key_file = world.settings.keys / f"{partner}.asc"
        key_file.write_text((key_file.read_text() if key_file.exists() else "") + public)
        next(s for s in protocol["signatories"] if s["id"] == partner)["signing_fingerprint"] = fpr
        keys[partner] = (fpr, gpg_home.export_secret(fpr))
    protocol_path.write_text(yaml.safe_dump(protocol, sort_keys=False))
    for sig in (world.settings.config_dir / "agreements").glob("*.asc"):
        sig.unlink()
    world.config = load_config(world.settings.config_dir)
    return keys


def _sign_as(cli, world, partners, partner):
    world.secrets["transfers_signing_key"] = partners[partner][1]
    return cli("agreement", "sign", "mash-referrals")


def _agreement(world):
    return world.settings.config_dir / "agreements" / "mash-referrals.yaml"


def test_each_partner_signs_then_validate_passes_and_gpg_verifies(cli, world, partners, gpg_home):
    result = cli("validate")
    assert result.exit_code == 2
    assert "mash-referrals version 1.1" in result.output
    assert "not signed by rotherham-childrens-services, south-yorkshire-police, rotherham-nhs-ft" in result.output

    for partner in PARTNERS:
        result = _sign_as(cli, world, partners, partner)
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        assert "signed mash-referrals version 1.1 (sha256 " in text and f"for {partner} with key " \
            f"{partners[partner][0]}" in text

    assert cli("validate").exit_code == 0
    for partner in PARTNERS:  # as a partner would check it by hand
        status = gpg_home.verify_detached(signature_path(_agreement(world), partner), _agreement(world))
        assert signed_by(status) == partners[partner][0]


def test_an_edited_agreement_blocks_validate_and_run_until_every_partner_signs_again(cli, world, partners):
    for partner in PARTNERS:
        assert _sign_as(cli, world, partners, partner).exit_code == 0
    data = yaml.safe_load(_agreement(world).read_text())
    data["purpose"] += " Edited after signing."
    _agreement(world).write_text(yaml.safe_dump(data, sort_keys=False))
    assert _sign_as(cli, world, partners, "south-yorkshire-police").exit_code == 0  # one partner signs the new text

    unsigned = "not signed by rotherham-childrens-services, rotherham-nhs-ft"
    result = cli("validate")
    assert result.exit_code == 2 and unsigned in " ".join(result.output.split())
    world.secrets["transfers_signing_key"] = partners["rotherham-childrens-services"][1]  # flow A's sender
    result = cli("validate", "--connect", "mash-referrals.A")  # preflight says so too
    assert result.exit_code == 1 and unsigned in " ".join(result.output.split()), result.output
    result = cli("run", "mash-referrals.A", "--date", LOGICAL_DATE.isoformat())
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "mash-referrals version 1.1" in text and unsigned in text
    assert world.remote_names("inbound/mash") == []  # nothing sent
    assert not world.run("mash-referrals.A").run_dir.exists() or not any(
        world.run("mash-referrals.A").run_dir.rglob("*.csv*"))  # nothing extracted

    for partner in ("rotherham-childrens-services", "rotherham-nhs-ft"):
        assert _sign_as(cli, world, partners, partner).exit_code == 0
    assert cli("validate").exit_code == 0
    world.secrets["transfers_signing_key"] = partners["rotherham-childrens-services"][1]
    result = cli("validate", "--connect", "mash-referrals.A")
    assert result.exit_code == 0, result.output
    result = cli("run", "mash-referrals.A", "--date", LOGICAL_DATE.isoformat())
    assert result.exit_code == 0, result.output
    assert any(name.endswith(".csv.pgp") for name in world.remote_names("inbound/mash"))


def test_a_key_pinned_for_no_partner_is_refused_naming_its_fingerprint(cli, world, partners, gpg_home):
    fpr = gpg_home.generate_key("stranger <stranger@example.invalid>", algo="cv25519", encryption_subkey=False)
    world.secrets["transfers_signing_key"] = gpg_home.export_secret(fpr)
    result = cli("agreement", "sign", "mash-referrals")
    assert result.exit_code == 1
    assert fpr in " ".join(result.output.split()).replace(" ", "")
    assert not list((world.settings.config_dir / "agreements").glob("*.asc"))


def test_the_rendered_agreement_shows_who_signed_which_version(cli, world, partners):
    assert _sign_as(cli, world, partners, "south-yorkshire-police").exit_code == 0
    result = cli("agreement", "render", "mash-referrals", "--format", "md")
    assert result.exit_code == 0, result.output
    fpr = partners["south-yorkshire-police"][0]
    shown = " ".join(fpr[i:i + 4] for i in range(0, 40, 4))
    assert "Signed version 1.1 (sha256 " in result.output and f"with key {shown} on " in result.output
    assert result.output.count("Not signed (version 1.1") == 2
