"""``transfers agreement schema``: the JSON Schema editors use agrees with the loader."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from transfers.cli import app
from transfers.settings import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "config" / "agreements" / "mash-referrals.yaml"


@pytest.fixture(scope="module")
def schema() -> dict:
    result = CliRunner().invoke(app, ["agreement", "schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def as_json(data: dict) -> dict:
    # YAML reads 2026-04-01 as a date; in the file (and for the schema) it is text.
    return json.loads(json.dumps(data, default=str))


def test_the_sample_agreement_is_valid_against_the_schema(schema):
    jsonschema.validate(as_json(yaml.safe_load(SAMPLE.read_text())), schema)


def test_a_typo_in_a_key_is_caught_by_the_schema_as_by_the_loader(schema):
    data = as_json(yaml.safe_load(SAMPLE.read_text()))
    data["flows"][0]["retenton"] = data["flows"][0].pop("retention")

    with pytest.raises(jsonschema.ValidationError, match="retenton"):
        jsonschema.validate(data, schema)


def test_the_schema_can_be_written_to_a_file(tmp_path):
    target = tmp_path / "agreement.schema.json"

    result = CliRunner().invoke(app, ["agreement", "schema", "--out", str(target)])

    assert result.exit_code == 0
    assert json.loads(target.read_text())["title"].startswith("Tier 2 data sharing agreement")


def test_register_statuses_are_in_the_schema_with_their_three_meanings(schema):
    data = as_json(yaml.safe_load(SAMPLE.read_text()))
    register = data["flows"][1]["consent"]["consent_register"]
    register["statuses"] = {"withdrawn": ["W", "consent withdrawn"], "restricted": ["R"], "given": ["Y"]}
    jsonschema.validate(data, schema)

    register["statuses"]["revoked"] = ["X"]
    with pytest.raises(jsonschema.ValidationError, match="revoked"):
        jsonschema.validate(data, schema)
