"""The rectification notice a quality run leaves with the sender: one entry per record, grouped by key,
listing every copy of a duplicated key."""

from __future__ import annotations

from tests.support.quality_flows import BAD_NHS, BAD_POSTCODE, QUARANTINE, clean, make_flow
from tests.support.quality_flows import run as run_quality
from transfers.quality.rectify import read_notice


def test_notice_groups_a_records_problems_and_lists_every_copy_of_a_duplicated_key(tmp_path):
    first, second = clean().iloc[:6].copy(), clean().iloc[6:].copy()
    second.loc[second.index[1], "referral_id"] = first.iloc[3]["referral_id"]  # row 8 repeats row 4's key
    first.loc[first.index[3], "nhs_number"] = BAD_NHS  # row 4 also fails two more checks
    first.loc[first.index[3], "postcode"] = BAD_POSTCODE
    first.loc[first.index[1], "postcode"] = BAD_POSTCODE  # row 2, between them in check order
    outcome = run_quality([first, second], make_flow(QUARANTINE), report_dir=tmp_path)

    lines = read_notice(outcome.rectification_csv)
    key = first.iloc[3]["referral_id"]
    assert [(r["row"], r["check"]) for r in lines if r["record_key"] == key] == [
        ("4", "accuracy.nhs_number.nhs_number"),
        ("4", "validity.format.postcode"),
        ("4", "reliability.record_key"),
        ("8", "reliability.record_key"),
    ]
    assert outcome.records_to_fix == 3  # rows 2, 4 and 8
    page = outcome.rectification_html.read_text(encoding="utf-8")
    # one entry per record: its key and row once, its problems beneath
    assert page.count(f"<td rowspan=\"3\">{key}</td>") == 1 and page.count(f"<td rowspan=\"1\">{key}</td>") == 1
    assert page.index('<td class="n" rowspan="1">2</td>') < page.index('<td class="n" rowspan="3">4</td>') \
        < page.index('<td class="n" rowspan="1">8</td>')
