"""The agreement rendered as the document IG signs: every section of Appendix C, filled from the YAML.

The sample agreement is edited first with values found nowhere else, so a
section that printed fixed text instead of the YAML would fail.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from transfers.agreement import load_config
from transfers.agreement_doc import SECTIONS, render
from transfers.cli import app
from transfers.errors import ConfigError
from transfers.settings import PROJECT_ROOT

#: Appendix C's cover rows and headings, in its own words (reference protocol, Appendix C).
APPENDIX_C = [
    "TIER 2: DATA SHARING AGREEMENT", "Agreement Name", "Purpose", "Data Sets to be Shared", "Risks and Mitigation",
    "Partners", "Security: (data processing, transfer, retention and destruction)",
    "Date Agreement comes into force", "Date of Agreement Review", "Agreement drawn up by",
    "REVISIONS/AMENDMENTS SINCE LAST VERSION", "Date of Review", "Amendment Details", "Agreement Owners",
    "1 Aim", "2 Pre Requisites", "3 Why do we need to share information?", "4 Legal basis",
    "5 What information is to be shared?", "How and when will data be shared?", "6 Retention of information",
    "7 Quality Assurance", "8 Renewal of the service specific protocol", "Signed", "Date:",
]


@pytest.fixture
def config(tmp_path: Path):
    root = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", root)
    path = root / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["name"] = "Zebra Crossing Referrals | Pilot"
    data["purpose"] = "To let partners see quokka-shaped risks."
    data["drawn_up_by"] = "Xylophone Governance Unit"
    data["security"] = "Sealed in narwhal-grade envelopes."
    data["revisions"].append({"date": "2026-10-01", "details": "Added the walrus clause."})
    data["owners"][0]["role"] = "Keeper of Otters"
    data["retention"]["procedure"] = "Shredded by the badger team."
    data["flows"][0]["name"] = "Flamingo referrals"
    data["flows"][0]["retention"]["logs"] = "P45D"
    data["flows"][1]["retention"]["archive"] = {"period": "P9M", "bucket": "ibis-archive", "connection": "ibis"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(root)


class _Text(HTMLParser):
    """Visible text per section id."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self._current: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self._current = dict(attrs).get("id")
            self.sections[self._current] = ""

    def handle_data(self, data):
        if self._current:
            self.sections[self._current] += data + " "  # cells apart, as a reader sees them


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_html_has_every_appendix_c_section_filled_from_the_yaml(config):
    html = render(config, "mash-referrals", "html")
    parser = _Text()
    parser.feed(html)
    sections = {k: _flat(v) for k, v in parser.sections.items()}

    assert list(sections) == [anchor for anchor, _heading in SECTIONS]
    text = _flat(" ".join(sections.values()))
    for words in APPENDIX_C:
        assert words in text, words
    a = config.agreement("mash-referrals").agreement
    protocol = config.protocol
    cover = sections["cover"]
    for value in (a.name, a.purpose, a.drawn_up_by, a.security, str(a.in_force), str(a.review_by), a.version):
        assert _flat(value) in cover, value
    for revision in a.revisions:
        assert str(revision.date) in cover and revision.details in cover
    for owner in a.owners:
        assert owner.role in cover and protocol.name_of(owner.partner) in cover
    for partner in a.partners:
        assert protocol.name_of(partner) in cover
        assert protocol.name_of(partner) in sections["signatures"]
    assert sections["signatures"].count("Signed") == len(a.partners)
    for purpose in a.purposes:
        assert protocol.purpose(purpose).name in sections["why"]
    for basis in a.legal_basis:
        assert protocol.legal_basis(basis).name in sections["legal-basis"]
    what = sections["what"]
    for flow in a.flows:
        assert f"Data Flow {flow.id} – {flow.name}" in what
        assert f"Data Flow {flow.id} – {flow.name}" in cover  # listed under "Data Sets to be Shared"
        own = what.split(f"Data Flow {flow.id} – {flow.name}", 1)[1]
        words = {"keep": "shared as held", "pseudonymise": "pseudonymised", "generalise": "generalised",
                 "mask": "masked", "drop": "not shared"}
        for name, spec in flow.fields.items():
            found = re.search(rf"\b{name} (shared as held|pseudonymised|generalised|masked|not shared)", own)
            assert found and found.group(1) == words[spec.share], name
        for recipient in flow.to:
            assert recipient.pgp_fingerprint in what and recipient.path in what
        if flow.consent.basis == "statutory":
            assert flow.consent.justification in sections["legal-basis"]
    retention = sections["retention"]
    assert a.retention.period.text in retention and a.retention.procedure in retention
    assert protocol.name_of(a.retention.controller) in retention
    assert "Run logs P45D" in retention and "S3 bucket ibis-archive) P9M" in retention
    assert str(a.review_by) in sections["renewal"]
    assert "Keeper of Otters" in cover and "walrus clause" in cover and "badger team" in retention


def test_markdown_has_the_same_sections_and_escapes_table_cells(config):
    md = render(config, "mash-referrals", "md")

    for words in APPENDIX_C:
        assert words in md, words
    assert "Zebra Crossing Referrals \\| Pilot" in md  # a '|' in a value cannot break the table
    assert "| **Date of Agreement Review** | 2027-03-31 |" in md
    assert "Flamingo referrals" in md and "| Run logs | P45D |" in md
    assert md.count("Signed ……") == 3


def test_an_unknown_agreement_or_format_is_refused(config):
    with pytest.raises(ConfigError, match="no agreement 'nope'"):
        render(config, "nope")
    with pytest.raises(ValueError, match="html or md"):
        render(config, "mash-referrals", "pdf")


def test_cli_renders_to_a_file(config, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(config.root))
    monkeypatch.setenv("TRANSFERS_HOME", str(tmp_path / "home"))
    target = tmp_path / "agreement.md"

    result = CliRunner().invoke(app, ["agreement", "render", "mash-referrals", "--format", "md", "--out", str(target)])

    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("# TIER 2: DATA SHARING AGREEMENT")
    bad = CliRunner().invoke(app, ["agreement", "render", "mash-referrals", "--format", "pdf"])
    assert bad.exit_code == 2


def test_markdown_values_cannot_become_markup_but_quotes_stay_readable():
    from transfers.agreement_doc import _md

    assert _md("Children's <b>Services</b> & \"Partners\" | x\ny") == (
        "Children's &lt;b&gt;Services&lt;/b&gt; &amp; \"Partners\" \\| x y"
    )
