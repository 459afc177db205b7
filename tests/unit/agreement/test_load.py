"""Every way an agreement can be wrong gets one clear error: the file, the key path, the value.

Broken configs are made per test: the real ``config/`` is copied to ``tmp_path``
and the sample agreement edited as data (no broken fixture files are committed).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.config_edits import SAMPLE, edit, problems
from transfers.agreement import check_live, load_config, retention_periods
from transfers.durations import Duration
from transfers.errors import AgreementNotLive, ConfigError

ROOT = Path(__file__).resolve().parents[3]
INSIDE = date(2026, 11, 24)  # inside the sample's in_force 2026-04-01 .. review_by 2027-03-31


def assert_names(message: str, path: Path, key_path: str, value: str) -> None:
    """The message names the file, then the key path, and shows the bad value."""
    assert re.search(rf"{re.escape(str(path))}: {re.escape(key_path)}: .*{re.escape(value)}", message), message


def flow(data: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return data["flows"][index]


# --------------------------------------------------------------------------- the sample loads


def test_the_sample_config_loads(config_dir):
    config = load_config(config_dir, today=INSIDE)
    assert [ref.key for ref in config.flows()] == ["mash-referrals.A", "mash-referrals.B"]


# --------------------------------------------------------------------------- malformed files


def test_malformed_yaml_names_the_file_and_line(config_dir):
    path = config_dir / "agreements" / SAMPLE
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if text.startswith("drawn_up_by:"))
    lines[line - 1] = "drawn_up_by: RMBC: Information Governance"  # a second ':' in a plain scalar
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    message = problems(config_dir)

    assert f"{path}: not valid YAML (line {line}, column" in message


def test_malformed_protocol_names_the_file_and_line(config_dir):
    path = config_dir / "protocol.yaml"
    text = path.read_text(encoding="utf-8").replace("signatories:\n", "signatories:\n  - {id: broken\n", 1)
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  - {id: broken") + 1

    message = problems(config_dir)

    assert message.startswith(f"{path}: not valid YAML (line ")
    assert re.search(rf"line {line}|line {line + 1}", message)


def test_an_agreement_that_is_not_a_mapping_is_refused(config_dir):
    path = config_dir / "agreements" / SAMPLE
    path.write_text("- just\n- a list\n", encoding="utf-8")

    assert str(path) in problems(config_dir)


# --------------------------------------------------------------------------- Tier 1 register


def test_unknown_partner_is_not_a_tier1_signatory(config_dir):
    path = edit(config_dir, lambda d: d["partners"].__setitem__(1, "syp"))

    message = problems(config_dir)

    assert_names(message, path, "partners[1]", "'syp' is not a Tier 1 signatory")


def test_a_signatory_that_has_not_signed_may_not_share(config_dir):
    protocol = config_dir / "protocol.yaml"
    data = yaml.safe_load(protocol.read_text(encoding="utf-8"))
    police = next(s for s in data["signatories"] if s["id"] == "south-yorkshire-police")
    police["signed"] = None
    protocol.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    path = config_dir / "agreements" / SAMPLE

    message = problems(config_dir)

    assert_names(message, path, "partners[1]", "'south-yorkshire-police' had not signed")


def test_a_sender_without_a_pinned_signing_key_cannot_send(config_dir):
    # Every delivery is signed (issue 11): the register must pin each sender's signing key.
    protocol = config_dir / "protocol.yaml"
    data = yaml.safe_load(protocol.read_text(encoding="utf-8"))
    trust = next(s for s in data["signatories"] if s["id"] == "rotherham-nhs-ft")
    del trust["signing_fingerprint"]
    protocol.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    message = problems(config_dir)

    assert_names(message, protocol, "signatories", "'rotherham-nhs-ft' sends flow B of mash-referrals but has no "
                                                   "signing_fingerprint")
    assert "rotherham-childrens-services" not in message  # flow A's sender has its key pinned


def test_a_signing_fingerprint_is_normalised_and_checked_like_a_recipients(config_dir):
    protocol = config_dir / "protocol.yaml"
    # Read from the file, not written here: `python -m transfers.devkit.signoff` pins new sample keys.
    [spaced] = re.findall(r'id: rotherham-nhs-ft,.*?signing_fingerprint: "([^"]+)"', protocol.read_text(), re.S)
    assert " " in spaced  # as `gpg --fingerprint` prints it
    config = load_config(config_dir)
    assert config.protocol.signatory("rotherham-nhs-ft").signing_fingerprint == spaced.replace(" ", "")
    protocol.write_text(protocol.read_text().replace(f'"{spaced}', f'"{spaced[:6]}X{spaced[7:]}', 1))

    text = problems(config_dir)
    assert f"{protocol}: signatories[" in text and "is not an OpenPGP v4 fingerprint" in text, text


def test_a_signature_after_in_force_is_too_late(config_dir):
    path = edit(config_dir, lambda d: d.update(in_force=date(2024, 3, 1)))

    message = problems(config_dir)

    assert_names(message, path, "partners[0]", "had not signed the overarching protocol by in_force 2024-03-01")


def test_flow_sender_must_be_a_partner_of_the_agreement(config_dir):
    path = edit(config_dir, lambda d: flow(d, 1).update({"from": "dwp"}))

    message = problems(config_dir)

    assert_names(message, path, "flows[1].from", "'dwp' is not a partner of this agreement")


def test_flow_recipient_must_be_a_partner_of_the_agreement(config_dir):
    path = edit(config_dir, lambda d: flow(d)["to"][0].update(partner="dwp"))

    message = problems(config_dir)

    assert_names(message, path, "flows[0].to[0].partner", "'dwp' is not a partner of this agreement")
    assert "partners: rotherham-childrens-services, south-yorkshire-police, rotherham-nhs-ft" in message


def test_a_flow_cannot_send_to_its_own_sender(config_dir):
    path = edit(config_dir, lambda d: flow(d)["to"][0].update(partner="rotherham-childrens-services"))

    assert_names(problems(config_dir), path, "flows[0].to[0].partner", "cannot send to its own sender")


def test_owner_and_controller_must_be_partners(config_dir):
    def change(d: dict[str, Any]) -> None:
        d["owners"][0]["partner"] = "dwp"
        d["retention"]["controller"] = "cps"

    path = edit(config_dir, change)
    message = problems(config_dir)

    assert_names(message, path, "owners[0].partner", "'dwp' is not a partner")
    assert_names(message, path, "retention.controller", "'cps' is not a partner")


def test_unknown_purpose(config_dir):
    path = edit(config_dir, lambda d: d["purposes"].append("curiosity"))

    assert_names(problems(config_dir), path, "purposes[3]", "'curiosity' is not a purpose in the Tier 1 register")


def test_unknown_legal_basis(config_dir):
    path = edit(config_dir, lambda d: d["legal_basis"].insert(0, "gdpr-vibes"))

    assert_names(problems(config_dir), path, "legal_basis[0]", "'gdpr-vibes' is not a legal basis")


# --------------------------------------------------------------------------- dates


def test_lapsed_review_by_is_reported_with_today(config_dir):
    path = config_dir / "agreements" / SAMPLE

    message = problems(config_dir, today=date(2027, 4, 1))

    assert_names(message, path, "review_by", "2027-03-31 has passed")
    load_config(config_dir)  # without today= the DAG loader still sees it (its runs then refuse)


def test_not_yet_in_force_is_reported_with_today(config_dir):
    path = config_dir / "agreements" / SAMPLE

    message = problems(config_dir, today=date(2026, 3, 31))

    assert_names(message, path, "in_force", "2026-04-01 is in the future")


def test_review_by_must_come_after_in_force(config_dir):
    path = edit(config_dir, lambda d: d.update(review_by=d["in_force"]))

    assert_names(problems(config_dir), path, "review_by", "2026-04-01 must be after in_force 2026-04-01")


def test_a_date_that_is_not_a_date(config_dir):
    path = edit(config_dir, lambda d: d.update(review_by="next spring"))

    assert_names(problems(config_dir), path, "review_by", "date")


# --------------------------------------------------------------------------- shape and values


@pytest.mark.parametrize(
    ("change", "key_path"),
    [
        (
            lambda d: flow(d)["fields"]["referral_id"].update(chekcs=flow(d)["fields"]["referral_id"].pop("checks")),
            "flows[0].fields.referral_id.chekcs",
        ),
        (lambda d: d.update(purpse="typo"), "purpse"),
        (lambda d: flow(d, 1)["to"][0].update(fingerprint="x"), "flows[1].to[0].fingerprint"),
        (lambda d: flow(d)["quality"].update(on_fail={}), "flows[0].quality.on_fail"),
    ],
)
def test_unknown_keys_are_errors_not_ignored(config_dir, change, key_path):
    path = edit(config_dir, change)

    assert_names(problems(config_dir), path, key_path, "unknown key")


def test_a_missing_required_key(config_dir):
    path = edit(config_dir, lambda d: d.pop("drawn_up_by"))

    assert_names(problems(config_dir), path, "drawn_up_by", "required key is missing")


@pytest.mark.parametrize(
    ("change", "key_path", "value"),
    [
        (lambda d: flow(d)["retention"].update(staging="7 days"), "flows[0].retention.staging", "'7 days'"),
        (lambda d: flow(d, 1)["retention"].update(remote="P"), "flows[1].retention.remote", "'P'"),
        (lambda d: d["retention"].update(period="P0D"), "retention.period", "'P0D' is a zero duration"),
        (lambda d: flow(d)["quality"].update(max_age="3d"), "flows[0].quality.max_age", "'3d'"),
        (
            lambda d: flow(d)["fields"]["referral_date"]["checks"].update(recent="thirty days"),
            "flows[0].fields.referral_date.checks.recent",
            "'thirty days'",
        ),
    ],
)
def test_bad_durations(config_dir, change, key_path, value):
    path = edit(config_dir, change)

    assert_names(problems(config_dir), path, key_path, value)


def test_periods_are_parsed_once_on_load_and_keep_their_text(config_dir):
    edit(config_dir, lambda d: flow(d)["retention"].pop("logs"))  # the default is a period too
    agreement = load_config(config_dir, today=INSIDE).flow("mash-referrals.A").agreement
    a = agreement.flow("A")
    periods = {
        "retention.period": agreement.retention.period,
        "staging": a.retention.staging,
        "remote": a.retention.remote.period,
        "archive": a.retention.archive.period,
        "reports": a.retention.reports,
        "logs": a.retention.logs,
        "max_age": a.quality.max_age,
        "recent": a.fields["referral_date"].checks.recent,
    }

    assert all(isinstance(p, Duration) for p in periods.values()), periods
    assert {k: str(p) for k, p in periods.items()} == {
        "retention.period": "P6Y", "staging": "P7D", "remote": "P14D", "archive": "P6M",
        "reports": "P90D", "logs": "P30D", "max_age": "P3D", "recent": "P30D",
    }
    assert agreement.retention.period.after(date(2024, 2, 29)) == date(2030, 2, 28)
    # Written back as the text it was read from, so a dump loads again unchanged.
    dumped = a.retention.model_dump()
    assert dumped["staging"] == "P7D" and dumped["remote"]["period"] == "P14D" and dumped["logs"] == "P30D"
    assert type(a.retention).model_validate(dumped) == a.retention


def test_a_bad_period_names_its_field_and_is_not_loaded(config_dir):
    path = edit(config_dir, lambda d: flow(d)["retention"]["archive"].update(period="six months"))

    assert_names(problems(config_dir), path, "flows[0].retention.archive.period",
                 "'six months' is not an ISO 8601 duration (examples: P7D")


@pytest.mark.parametrize(
    "fingerprint",
    [
        "DEADBEEF",  # too short (a key id, not a fingerprint)
        "89FB F484 4549 14D4 8044  6C20 F954 8A12 F8B9 2CCG",  # not hex
        "89FB F484 4549 14D4 8044  6C20 F954 8A12 F8B9 2CCD 00",  # too long
    ],
)
def test_bad_fingerprints(config_dir, fingerprint):
    path = edit(config_dir, lambda d: flow(d)["to"][0].update(pgp_fingerprint=fingerprint))

    message = problems(config_dir)

    assert_names(message, path, "flows[0].to[0].pgp_fingerprint", f"{fingerprint!r} is not an OpenPGP v4 fingerprint")


def test_fingerprints_are_normalised(config_dir):
    edit(config_dir, lambda d: flow(d)["to"][0].update(pgp_fingerprint="89fbf484454914d480446c20f9548a12f8b92ccd"))

    recipient = load_config(config_dir).flow("mash-referrals.A").flow.to[0]

    assert recipient.pgp_fingerprint == "89FBF484454914D480446C20F9548A12F8B92CCD"


@pytest.mark.parametrize(
    ("remote", "why"),
    [
        ("../x", "must not contain '..'"),
        ("inbound/../../etc", "must not contain '..'"),
        ("/abs", "must be relative, not absolute"),
        ("C:/inbound", "must be relative, not absolute"),
        ("inbound\nmash", "contains a control character"),
    ],
)
def test_remote_paths_cannot_escape(config_dir, remote, why):
    path = edit(config_dir, lambda d: flow(d)["to"][0].update(path=remote))

    assert_names(problems(config_dir), path, "flows[0].to[0].path", f"{remote!r} {why}")


@pytest.mark.parametrize("query", ["../secrets.sql", "/etc/passwd"])
def test_source_paths_cannot_escape(config_dir, query):
    path = edit(config_dir, lambda d: flow(d)["source"].update(query=query))

    assert_names(problems(config_dir), path, "flows[0].source", repr(query))


def test_a_query_file_that_does_not_exist(config_dir):
    path = edit(config_dir, lambda d: flow(d)["source"].update(query="sql/missing.sql"))

    assert_names(problems(config_dir), path, "flows[0].source.query", "'sql/missing.sql' not found")


def test_generalise_without_to(config_dir):
    path = edit(config_dir, lambda d: flow(d)["fields"]["postcode"].pop("to"))

    assert_names(problems(config_dir), path, "flows[0].fields.postcode", "share: generalise needs 'to'")


def test_to_on_a_field_that_is_not_generalised(config_dir):
    path = edit(config_dir, lambda d: flow(d)["fields"]["risk_level"].update(to="year"))

    assert_names(problems(config_dir), path, "flows[0].fields.risk_level", "this field is share: keep")


def test_a_generalisation_level_that_does_not_exist(config_dir):
    path = edit(config_dir, lambda d: flow(d)["fields"]["postcode"].update(to="street"))

    assert_names(problems(config_dir), path, "flows[0].fields.postcode.to", "'year', 'month', 'age_band', 'district' or 'sector'")


def test_subject_must_be_a_field(config_dir):
    path = edit(config_dir, lambda d: flow(d).update(subject="person_id"))

    assert_names(problems(config_dir), path, "flows[0]", "subject 'person_id' is not one of the flow's fields")


def test_record_key_must_be_a_field(config_dir):
    path = edit(config_dir, lambda d: flow(d, 1).update(record_key="visit_id"))

    assert_names(problems(config_dir), path, "flows[1]", "record_key 'visit_id' is not one of the flow's fields")


def test_pseudonymise_without_a_key_secret(config_dir):
    path = edit(config_dir, lambda d: d.pop("pseudonymisation"))

    message = problems(config_dir)

    assert_names(message, path, "flows[0].fields", "pseudonymise is used but the agreement has no 'pseudonymisation")
    assert_names(message, path, "flows[1].fields", "pseudonymise")


def test_duplicate_flow_ids(config_dir):
    path = edit(config_dir, lambda d: flow(d, 1).update(id="A"))

    assert_names(problems(config_dir), path, "flows", "'A' repeated at flows[0].id, flows[1].id")


def test_file_name_must_match_id(config_dir):
    (config_dir / "agreements" / SAMPLE).rename(config_dir / "agreements" / "mash.yaml")
    path = config_dir / "agreements" / "mash.yaml"

    assert_names(problems(config_dir), path, "id", "'mash-referrals' must match the file name ('mash')")


def test_a_protocol_without_the_six_characteristics(config_dir):
    path = config_dir / "protocol.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["quality_characteristics"] = data["quality_characteristics"][:5]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    assert_names(problems(config_dir), path, "quality_characteristics", "must be exactly accuracy")


def test_the_sample_names_a_period_for_every_place(config_dir):
    config = load_config(config_dir)
    for ref in config.flows():
        periods = retention_periods(ref.flow)
        assert set(periods) == {"staging", "archive", "remote", "reports", "notices", "logs"}
        assert ref.flow.retention.remote.sender_may_remove is True


# --------------------------------------------------------------------------- all at once


def test_every_problem_in_a_file_is_reported_together(config_dir):
    def change(d: dict[str, Any]) -> None:
        flow(d)["to"][0]["partner"] = "syp"  # a cross-check
        d["purposes"][0] = "curiosity"  # another cross-check

    path = edit(config_dir, change)
    message = problems(config_dir)

    assert_names(message, path, "flows[0].to[0].partner", "'syp'")
    assert_names(message, path, "purposes[0]", "'curiosity'")


def test_every_shape_problem_in_a_file_is_reported_together(config_dir):
    def change(d: dict[str, Any]) -> None:
        flow(d)["to"][0]["pgp_fingerprint"] = "DEADBEEF"
        flow(d, 1)["retention"]["staging"] = "a week"
        flow(d, 1)["fields"]["nhs_number"]["chekcs"] = {}

    path = edit(config_dir, change)
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)

    assert len(caught.value.problems) == 3
    message = str(caught.value)
    assert_names(message, path, "flows[0].to[0].pgp_fingerprint", "'DEADBEEF'")
    assert_names(message, path, "flows[1].retention.staging", "'a week'")
    assert_names(message, path, "flows[1].fields.nhs_number.chekcs", "unknown key")


def test_problems_in_every_file_are_reported_together(config_dir):
    broken = config_dir / "agreements" / "broken.yaml"
    broken.write_text("id: broken\nname: [unclosed\n", encoding="utf-8")
    path = edit(config_dir, lambda d: d["partners"].__setitem__(1, "syp"))

    message = problems(config_dir)

    assert f"{broken}: not valid YAML" in message
    assert_names(message, path, "partners[1]", "'syp'")


def test_archive_dirs_outside_home_are_rejected_at_load_naming_file_and_key_all_at_once(config_dir):
    def change(data: dict) -> None:
        data["flows"][0]["retention"]["archive"] = {"period": "P6M", "dir": "../x"}
        data["flows"][1]["retention"]["archive"] = {"period": "P6M", "dir": "/tmp/x"}
        data["flows"][1]["source"]["path"] = "../x"  # local source files: under their connection's directory
        data["flows"][1]["consent"]["opt_outs"]["path"] = "/tmp/x"

    path = edit(config_dir, change)

    lines = problems(config_dir).splitlines()
    assert any(line.startswith(f"{path}: flows[1].source.path: ") and "'..'" in line for line in lines), lines
    assert any(line.startswith(f"{path}: flows[1].consent.opt_outs: ") and "must be relative" in line
               for line in lines), lines
    assert any(line.startswith(f"{path}: flows[0].retention.archive.dir: ") and "'..'" in line for line in lines), lines
    assert any(line.startswith(f"{path}: flows[1].retention.archive.dir: ") and "must be relative" in line
               for line in lines), lines


# --------------------------------------------------------------------------- check_live


@pytest.fixture
def sample(config_dir):
    config = load_config(config_dir)
    return config.agreement("mash-referrals").agreement, config.protocol


@pytest.mark.parametrize("on", [date(2026, 4, 1), INSIDE, date(2027, 3, 31)])
def test_check_live_passes_inside_the_window(sample, on):
    agreement, protocol = sample
    check_live(agreement, protocol, on)  # the first and last days count


def test_check_live_refuses_a_lapsed_agreement(sample):
    agreement, protocol = sample
    with pytest.raises(AgreementNotLive, match=r"agreement mash-referrals: lapsed on 2027-03-31 .*nothing was sent"):
        check_live(agreement, protocol, date(2027, 4, 1))


def test_check_live_refuses_an_agreement_not_yet_in_force(sample):
    agreement, protocol = sample
    with pytest.raises(AgreementNotLive, match=r"agreement mash-referrals: not in force until 2026-04-01"):
        check_live(agreement, protocol, date(2026, 3, 31))


def test_check_live_refuses_a_partner_that_left_the_register(sample):
    agreement, protocol = sample
    shrunk = protocol.model_copy(
        update={"signatories": [s for s in protocol.signatories if s.id != "rotherham-nhs-ft"]}
    )
    with pytest.raises(AgreementNotLive, match="'rotherham-nhs-ft' is not a Tier 1 signatory"):
        check_live(agreement, shrunk, INSIDE)


def test_consent_basis_without_a_register_is_refused(config_dir):
    # Saying "consent" with nowhere to read withdrawals from would send those who withdrew.
    path = edit(config_dir, lambda d: flow(d, 1)["consent"].pop("consent_register"))

    assert_names(problems(config_dir), path, "flows[1].consent", "basis: consent needs consent_register")


@pytest.mark.parametrize(("change", "key_path"), [
    (lambda d: flow(d, 0)["source"].update(connection="CS DB"), "flows[0].source.connection"),
    (lambda d: flow(d, 0)["to"][0].update(sftp="syp-sftp"), "flows[0].to[0].sftp"),
    (lambda d: flow(d, 1)["consent"]["consent_register"].update(connection="../exports"),
     "flows[1].consent.consent_register.connection"),
])
def test_connection_ids_are_checked_wherever_they_appear(config_dir, change, key_path):
    path = edit(config_dir, change)

    assert_names(problems(config_dir), path, key_path, "is not a valid connection id")


def test_a_flow_must_declare_its_basis_for_sharing(config_dir):
    path = edit(config_dir, lambda d: flow(d, 0).pop("consent"))

    assert_names(problems(config_dir), path, "flows[0].consent", "every flow declares why it may share")


# --------------------------------------------------------------------------- privacy declarations


def _config_copy(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    root = tmp_path / "config"
    shutil.copytree(ROOT / "config", root)
    path = root / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def test_a_ground_outside_the_protocol_is_named_with_the_grounds_allowed(tmp_path):
    from transfers.errors import ConfigError

    root = _config_copy(tmp_path, lambda d: d["flows"][0]["consent"].update(ground="convenience"))
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    message = str(caught.value.problems)
    assert "flows[0].consent.ground: 'convenience' is not an exceptional ground" in message
    assert "safeguarding" in message


def test_subject_lists_need_a_pseudonymisation_key(tmp_path):
    from transfers.errors import ConfigError

    def change(data: dict) -> None:
        del data["pseudonymisation"]
        for flow in data["flows"]:
            flow["fields"]["nhs_number"]["share"] = "keep"
        data["flows"][1]["consent"]["opt_outs"] = {"kind": "csv", "connection": "rft_exports", "path": "o.csv"}

    with pytest.raises(ConfigError, match=r"flows\[1\]\.consent: a consent register or opt-out list needs"):
        load_config(_config_copy(tmp_path, change))
