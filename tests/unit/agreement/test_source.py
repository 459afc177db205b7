"""A flow's source (``transfers/agreement/source.py``): the s3 kind's fields, and date templates checked at load."""

from __future__ import annotations

import json
from datetime import date

import jsonschema
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.support.config_edits import SAMPLE, edit, problems
from transfers.agreement import Source, load_config
from transfers.agreement.source import fill_date_template
from transfers.agreement_doc import render
from transfers.cli import app

S3 = {"kind": "s3", "connection": "rft_s3", "bucket": "rft-exports"}


def to_s3(key: str, **extra: object):
    def change(data: dict) -> None:
        data["flows"][1]["source"] = {**S3, "key": key, **extra}

    return change


@pytest.mark.parametrize(
    ("key", "given", "found"),
    [
        ("exports/{ds}/referrals.csv", None, "csv"),
        ("exports/{ds_nodash}/referrals.parquet", None, "parquet"),
        ("exports/{ds}/referrals.pq", None, "parquet"),
        ("exports/{ds}/referrals.dat", "parquet", "parquet"),
        ("exports/{ds}/referrals.parquet", "csv", "csv"),  # format: says it, whatever the ending
    ],
)
def test_an_s3_source_s_format_comes_from_format_or_the_key_s_ending(key, given, found):
    assert Source(**S3, key=key, format=given).object_format == found


def test_a_key_whose_format_cannot_be_told_asks_for_format():
    with pytest.raises(ValidationError, match="add format: csv or format: parquet"):
        Source(**S3, key="exports/{ds}/referrals.json")


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"kind": "s3", "connection": "rft_s3", "key": "a.csv"}, "needs 'bucket' and 'key'"),
        ({**S3}, "needs 'bucket' and 'key'"),
        ({**S3, "key": "a.csv", "path": "b.csv"}, "not 'query' or 'path'"),
        ({"kind": "csv", "connection": "x", "path": "a.csv", "bucket": "rft-exports"}, "are for an s3 source"),
        ({**S3, "bucket": "Rft_Exports", "key": "a.csv"}, "is not an S3 bucket name"),
        ({**S3, "key": "/exports/a.csv"}, "must be relative"),
    ],
)
def test_an_s3_source_needs_its_own_fields_and_only_those(fields, says):
    with pytest.raises(ValidationError, match=says):
        Source(**fields)


def test_templates_fill_both_date_placeholders():
    assert fill_date_template("x/{ds}/{ds_nodash}.csv", date(2026, 11, 3)) == "x/2026-11-03/20261103.csv"
    assert fill_date_template("x/{{literal}}.csv", date(2026, 11, 3)) == "x/{literal}.csv"


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("exports/{date}/referrals.csv", "unknown placeholder {date}"),
        ("exports/{ds:%Y}/referrals.csv", "unknown placeholder {ds:%Y}"),
        ("exports/{ds!r}/referrals.csv", "unknown placeholder {ds!r}"),
        ("exports/{ds/referrals.csv", "is not a valid template"),
    ],
)
def test_a_bad_key_template_is_refused_at_load_naming_the_file_and_field(config_dir, key, says):
    path = edit(config_dir, to_s3(key))

    message = problems(config_dir)

    line = next(line for line in message.splitlines() if "flows[1].source.key" in line)
    assert line.startswith(f"{path}: flows[1].source.key: ") and says in line, message
    assert "{ds}" in line  # names what a template may use


def test_a_bad_csv_path_template_is_refused_too_naming_source_path(config_dir):
    def change(data: dict) -> None:
        data["flows"][1]["source"]["path"] = "ed/attendances_{day}.csv"

    path = edit(config_dir, change)

    assert f"{path}: flows[1].source.path: source path 'ed/attendances_{{day}}.csv': unknown placeholder {{day}}" in (
        problems(config_dir)
    )


def test_an_s3_source_loads_is_in_the_schema_and_is_rendered_in_the_agreement(config_dir):
    edit(config_dir, to_s3("ed/{ds}/attendances.parquet"))
    config = load_config(config_dir)

    assert config.flow("mash-referrals.B").flow.source.object_format == "parquet"
    schema = json.loads(CliRunner().invoke(app, ["agreement", "schema"]).stdout)
    data = json.loads(json.dumps(yaml.safe_load((config_dir / "agreements" / SAMPLE).read_text()), default=str))
    jsonschema.validate(data, schema)
    data["flows"][1]["source"]["format"] = "json"
    with pytest.raises(jsonschema.ValidationError, match="json"):
        jsonschema.validate(data, schema)
    text = render(config, "mash-referrals", fmt="md")
    assert (
        "Extracted from the object ed/YYYY-MM-DD/attendances.parquet (PARQUET) in the S3 bucket rft-exports "
        "(connection rft_s3)"
    ) in text
