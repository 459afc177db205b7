"""Formula escaping of CSV cells (OWASP), and how the agreement render documents it per flow."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from transfers.agreement import load_config
from transfers.agreement_doc import render
from transfers.csv_escape import escape_frame, escape_value, unescape_value
from transfers.settings import PROJECT_ROOT


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"), ("+1+1", "'+1+1"), ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("\n=1", "'\n=1"), ("-", "'-"), ("+44 1709 000000", "'+44 1709 000000"),
    ("-3", "-3"), ("+3", "+3"), ("-0.5", "-0.5"), ("-.5", "-.5"), ("1e-3", "1e-3"), ("-2E+4", "-2E+4"),
    ("R000123", "R000123"), ("a=b", "a=b"), ("", ""), ("'=already", "''=already"),
    ("''+x", "'''+x"), ("''+1", "''+1"), ("'plain", "'plain"), ("'-3", "'-3"), ("'", "'"),
])
def test_a_value_a_spreadsheet_would_run_gets_a_leading_apostrophe_and_plain_numbers_do_not(value, expected):
    assert escape_value(value) == expected


@pytest.mark.parametrize("value", [
    "=1+1", "+44 1709 000000", "-", "@SUM(A1)", "\t=1", "\n=1", "-3", "1e-3", "R000123", "", "'", "''",
    "'=already", "''=already", "'''@x", "'plain", "'-3", "'\t", "a=b", None, 42, -1.5,
])
def test_unescaping_gives_back_exactly_the_value_that_was_escaped(value):
    assert unescape_value(escape_value(value)) == value


def test_unescaping_leaves_values_escaping_never_produces_and_removes_exactly_one_apostrophe():
    assert [unescape_value(v) for v in ["'=x", "''=x", "'plain", "=x", "'-3", "'"]] == ["=x", "'=x", "'plain", "=x",
                                                                                       "'-3", "'"]


def test_a_frame_is_escaped_cell_by_cell_leaving_numbers_and_missing_values(tmp_path):
    frame = pd.DataFrame({"text": ["=cmd", None, "ok", "'=cmd"], "number": [-3, 4, 5, 6],
                          "float": [-1.5, None, 2.0, 3.0]})

    out = escape_frame(frame)

    assert list(out["text"][[0, 2, 3]]) == ["'=cmd", "ok", "''=cmd"] and pd.isna(out["text"][1])
    assert list(out["number"]) == [-3, 4, 5, 6] and out["float"][0] == -1.5
    assert frame["text"][0] == "=cmd"  # the input is not changed


@pytest.fixture
def config_dir(tmp_path):
    target = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", target)
    return target


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_agreement_render_says_per_flow_whether_values_are_escaped(config_dir, fmt):
    path = config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["flows"][1]["csv"] = {"formula_escape": False}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(config_dir)
    assert config.flow("mash-referrals.A").flow.csv.formula_escape is True  # the default

    text = render(config, "mash-referrals", fmt)

    flow_a, flow_b = text.split("5 What information is to be shared?", 1)[1].split("Data Flow B", 1)
    assert "apostrophe" in flow_a and "OWASP" in flow_a and "-3" in flow_a
    assert "formula_escape: false" in flow_b and "exactly as held" in flow_b


def test_a_misspelt_csv_option_names_file_and_key(config_dir):
    from transfers.errors import ConfigError

    path = config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["flows"][0]["csv"] = {"formula_escaping": False}
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    with pytest.raises(ConfigError, match=r"flows\[0\]\.csv\.formula_escaping: unknown key"):
        load_config(config_dir)
