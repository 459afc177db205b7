"""What gpg decrypts: only agreed fields, no clear identifiers, stable pseudonyms, declared generalisation, k."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.privacy_world import agreement_path, edit_agreement, flow_of, payloads, sent, write_ed
from transfers.devkit import synthetic
from transfers.errors import DisclosureRiskBlocked, PrivacyError
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

ED_DIR = "inbound/ed-attendances"
DAY2 = LOGICAL_DATE - timedelta(days=1)


def test_fields_are_transformed_at_their_declared_level_and_nothing_else_leaves(world, gpg_partner):
    source = synthetic.ed_attendances(30, LOGICAL_DATE)
    source["phone"] = [f"07700{900000 + i:06d}" for i in range(len(source))]
    source["gp_notes"] = "seen by the GP last week"  # named nowhere in the agreement
    write_ed(world, source, LOGICAL_DATE)

    def declare(data: dict) -> None:
        fields = flow_of(data, "B")["fields"]
        fields["date_of_birth"] = {"share": "generalise", "to": "age_band", "bands": [0, 5, 10, 16]}
        fields["postcode"] = {"share": "generalise", "to": "sector"}
        fields["arrived_at"] = {"share": "generalise", "to": "month"}
        fields["phone"] = {"share": "mask", "keep_last": 2}

    edit_agreement(world, declare)
    run_flow(world.run("mash-referrals.B"), world.resolvers())

    frame = sent(world, gpg_partner, ED_DIR)
    assert list(frame.columns) == ["attendance_id", "nhs_number", "date_of_birth", "postcode", "arrived_at",
                                   "safeguarding_flag", "phone"]
    plaintext = b"".join(gpg_partner.home.decrypt(f) for f in world.delivered(ED_DIR)).decode()
    for value in [*source["nhs_number"], *[n.replace(" ", "") for n in source["nhs_number"]], *source["phone"],
                  *source["date_of_birth"], *source["postcode"], "seen by the GP", *source["presenting_complaint"]]:
        assert value not in plaintext
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in frame["nhs_number"])
    assert set(frame["date_of_birth"]) <= {"0-4", "5-9", "10-15", "16+"}
    assert all(re.fullmatch(r"S6[0-9] [0-9]", v) for v in frame["postcode"])
    assert set(frame["arrived_at"]) == {f"{LOGICAL_DATE:%Y-%m}"}
    assert all(re.fullmatch(r"\*{9}[0-9]{2}", v) for v in frame["phone"])
    assert [p[-2:] for p in frame["phone"]] == [p[-2:] for p in source["phone"]]


def _run_day(world, on):
    write_ed(world, synthetic.ed_attendances(30, on), on)  # same seed: the same children again
    return run_flow(world.run("mash-referrals.B", on), world.resolvers())


def _by_attendance_order(world, gpg_partner, on) -> list[str]:
    files = [f for f in world.delivered(ED_DIR) if on.isoformat() in f.name]
    from tests.integration.conftest import read_delivery

    return list(read_delivery(gpg_partner, files[0])["nhs_number"])


def test_one_subject_keeps_one_pseudonym_across_runs_and_a_new_one_after_key_rotation(world, gpg_partner):
    _run_day(world, DAY2)
    _run_day(world, LOGICAL_DATE)
    first, second = _by_attendance_order(world, gpg_partner, DAY2), _by_attendance_order(world, gpg_partner,
                                                                                            LOGICAL_DATE)
    assert first == second and len(set(first)) == 30

    edit_agreement(world, lambda d: d["pseudonymisation"].update(key_id="mash-2026-10"))
    third_day = DAY2 - timedelta(days=1)
    _run_day(world, third_day)
    rotated = _by_attendance_order(world, gpg_partner, third_day)
    assert not set(rotated) & set(first)
    keys = payloads(world, "pseudonym-key")
    assert [k["event"] for k in keys] == ["first-use", "rotation"]
    assert keys[1]["previous"]["key_id"] == "mash-2026-04" and keys[1]["key_id"] == "mash-2026-10"
    assert keys[0]["key_fingerprint"] != keys[1]["key_fingerprint"]
    assert world.secrets["mash_pseudonym_key"] not in str(keys)

    # One person, found under both keys; a withdrawal names them by every pseudonym the recipient holds.
    from tests.integration.privacy_world import notices
    from transfers.notices import send_notices
    from transfers.privacy.step import subject_lookup_key
    from transfers.privacy.subjects import SubjectIndex, lookup_of

    subject = synthetic.ed_attendances(30, DAY2)["nhs_number"][0]
    lookup = lookup_of(subject, subject_lookup_key(world.run("mash-referrals.B"), lambda n: world.secrets[n]))
    index = SubjectIndex.for_settings(world.settings)
    trail = [(e.logical_date, e.pseudonym, e.key_id) for e in index.events([lookup], event="disclosed")]
    index.close()
    assert sorted(trail) == sorted([(third_day, rotated[0], "mash-2026-10"), (DAY2, first[0], "mash-2026-04"),
                                    (LOGICAL_DATE, first[0], "mash-2026-04")])
    send_notices(world.settings, world.config, world.settings.open_ledger(), world.resolvers().connection,
                 kind="withdrawal", lookups={"mash-referrals": lookup}, occasion="withdrawn",
                 secret=world.resolvers().secret)
    [notice] = notices(world, gpg_partner, ED_DIR)
    assert notice["subject"]["pseudonyms"] == sorted([first[0], rotated[0]])
    assert notice["subject"]["key_ids"] == ["mash-2026-04", "mash-2026-10"]


def _second_agreement(world, linkage_domain: str | None) -> None:
    """The same agreement again under another id (and its own remote directories), same secret."""
    import yaml

    data = yaml.safe_load(agreement_path(world).read_text())
    data["id"] = "ed-followup"
    for flow in data["flows"]:
        for recipient in flow["to"]:
            recipient["path"] = recipient["path"].replace("inbound/", "inbound-followup/")
    if linkage_domain:
        data["pseudonymisation"]["linkage_domain"] = linkage_domain
    agreement_path(world, "ed-followup").write_text(yaml.safe_dump(data, sort_keys=False))
    if linkage_domain:
        edit_agreement(world, lambda d: d["pseudonymisation"].update(linkage_domain=linkage_domain))
    world.reload()


@pytest.mark.parametrize("shared", [False, True])
def test_agreements_get_different_pseudonyms_unless_they_share_a_linkage_domain(world, gpg_partner, shared):
    _second_agreement(world, "rotherham-mash" if shared else None)
    run_flow(world.run("mash-referrals.B"), world.resolvers())
    run_flow(world.run("ed-followup.B"), world.resolvers())

    ours = list(sent(world, gpg_partner, ED_DIR)["nhs_number"])
    theirs = list(sent(world, gpg_partner, "inbound-followup/ed-attendances")["nhs_number"])
    assert len(ours) == len(theirs) == 30
    assert (ours == theirs) is shared
    if not shared:
        assert not set(ours) & set(theirs)


def _crafted(on):
    """Ten attendances whose (birth year, district) groups have sizes 4, 3, 2 and 1: k = 1."""
    frame = synthetic.ed_attendances(10, on)
    groups = [("2014-03-01", "S60 1AA")] * 4 + [("2014-06-01", "S61 2BB")] * 3 + [("2015-01-01", "S60 3CC")] * 2 \
        + [("2012-01-01", "S66 4DD")]
    frame["date_of_birth"] = [g[0] for g in groups]
    frame["postcode"] = [g[1] for g in groups]
    return frame


@pytest.mark.parametrize("crafted_k, min_k", [(1, 2), (2, 2)])
def test_the_k_check_reports_the_smallest_group_and_blocks_when_asked(world, crafted_k, min_k):
    frame = _crafted(LOGICAL_DATE)
    if crafted_k == 2:
        frame = frame.iloc[:9]  # drop the singleton: smallest group is now the pair
    write_ed(world, frame, LOGICAL_DATE)
    edit_agreement(world, lambda d: flow_of(d, "B").__setitem__(
        "disclosure_risk", {"quasi_identifiers": ["date_of_birth", "postcode"], "min_k": min_k, "on_failure": "block"}))

    if crafted_k < min_k:
        with pytest.raises(DisclosureRiskBlocked) as caught:
            run_flow(world.run("mash-referrals.B"), world.resolvers())
        message = str(caught.value)
        assert "mash-referrals.B" in message and "k=1" in message and "min_k=2" in message
        assert "date_of_birth, postcode" in message
        assert isinstance(caught.value, PrivacyError) and not caught.value.retriable
        assert world.delivered(ED_DIR) == []
        assert payloads(world, "disclosure") == []
    else:
        results = run_flow(world.run("mash-referrals.B"), world.resolvers())
        assert results["prepare"]["k"]["k"] == 2
        assert len(world.delivered(ED_DIR)) == 1
    [entry] = payloads(world, "privacy", "mash-referrals.B")
    assert entry["k"]["k"] == crafted_k
    assert entry["k"]["groups"] == (4 if crafted_k == 1 else 3)
    assert entry["k"]["passed"] is (crafted_k >= min_k)


def test_warn_reports_a_small_k_and_still_sends(world):
    write_ed(world, _crafted(LOGICAL_DATE), LOGICAL_DATE)
    edit_agreement(world, lambda d: flow_of(d, "B")["disclosure_risk"].update(min_k=3, on_failure="warn"))
    results = run_flow(world.run("mash-referrals.B"), world.resolvers())
    assert results["prepare"]["k"] == {"k": 1, "groups": 4, "rows": 10, "quasi_identifiers": ["date_of_birth", "postcode"],
                                       "min_k": 3, "on_failure": "warn", "passed": False}
    assert len(world.delivered(ED_DIR)) == 1
