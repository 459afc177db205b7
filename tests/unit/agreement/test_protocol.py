"""The information sharing protocol's register: a signatory id is a safe folder name."""

from __future__ import annotations

from tests.support.config_edits import problems


def test_a_partner_id_that_could_name_a_folder_outside_its_place_is_rejected(config_dir):
    path = config_dir / "protocol.yaml"
    path.write_text(path.read_text().replace("{id: dwp,", "{id: ../../dwp,", 1))

    text = problems(config_dir)
    assert f"{path}: signatories[" in text and "'../../dwp' is not a valid signatory id" in text, text
