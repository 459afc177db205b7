"""The flow models' own validation (``transfers/agreement/flow.py``): a field's options fit its share, and a
statutory basis names its ground and justification."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from tests.support.config_edits import SAMPLE, edit, problems
from transfers.agreement import FieldSpec, Flow, SharingBasis
from transfers.errors import ConfigError
from transfers.settings import PROJECT_ROOT

# The sample agreement's first flow, as data: the mode tests vary its recipient.
_SAMPLE_FLOW = yaml.safe_load((PROJECT_ROOT / "config" / "agreements" / SAMPLE).read_text(encoding="utf-8"))["flows"][0]


def test_field_spec_rejects_misplaced_options():
    with pytest.raises(ValidationError, match="bands"):
        FieldSpec(share="generalise", to="year", bands=[0, 5])
    with pytest.raises(ValidationError, match="keep_last"):
        FieldSpec(share="keep", keep_last=2)
    with pytest.raises(ValidationError, match="increasing"):
        FieldSpec(share="generalise", to="age_band", bands=[10, 5])


def test_statutory_basis_needs_a_ground_and_a_written_justification():
    with pytest.raises(ValidationError, match="legal_basis, ground, justification"):
        SharingBasis(basis="statutory")
    with pytest.raises(ValidationError, match="in words"):
        SharingBasis(basis="statutory", legal_basis="children-act-1989", ground="safeguarding", justification="yes")
    with pytest.raises(ValidationError, match="override_opt_outs only applies"):
        SharingBasis(basis="consent", override_opt_outs=True)


# --------------------------------------------------------------------------- upload and verify modes


def _recipient(flow_index: int, **modes: str):
    def change(data):
        data["flows"][flow_index]["to"][0].update(modes)
        data["flows"][flow_index].pop("receipt_within", None)
    return change


def test_a_direct_upload_checked_by_read_back_is_refused_naming_file_flow_recipient_and_combination(config_dir):
    path = edit(config_dir, _recipient(0, upload="direct", verify="read-back"))

    message = problems(config_dir)

    assert f"{path}: flows[0]: flow A, recipient south-yorkshire-police: upload: direct with verify: read-back " \
           "is refused" in message
    assert "set verify: size or receipt, or upload: atomic or rename" in message


def test_a_direct_upload_is_refused_with_the_default_verify_too(config_dir):
    edit(config_dir, _recipient(0, upload="direct"))

    assert "upload: direct with verify: read-back is refused" in problems(config_dir)


def test_verify_receipt_needs_the_flow_to_declare_receipt_within(config_dir):
    path = edit(config_dir, _recipient(1, upload="direct", verify="receipt"))

    message = problems(config_dir)

    assert f"{path}: flows[1]: flow B, recipient rotherham-childrens-services: upload: direct with verify: " \
           "receipt needs the flow to declare receipt_within" in message


def test_unknown_modes_are_refused(config_dir):
    edit(config_dir, _recipient(0, upload="posix-rename", verify="md5"))

    message = problems(config_dir)

    assert "flows[0].to[0].upload" in message and "flows[0].to[0].verify" in message


@pytest.mark.parametrize(("upload", "verify"), [("atomic", "read-back"), ("rename", "read-back"), ("atomic", "size"),
                                                ("rename", "receipt"), ("direct", "size"), ("direct", "receipt")])
def test_the_allowed_combinations_validate(upload, verify):
    flow = dict(_SAMPLE_FLOW)
    flow["to"] = [dict(flow["to"][0], upload=upload, verify=verify)]
    flow["receipt_within"] = "PT6H"

    parsed = Flow.model_validate(flow)

    assert (parsed.to[0].upload, parsed.to[0].verify) == (upload, verify)


def test_the_default_is_atomic_with_read_back():
    recipient = Flow.model_validate(_SAMPLE_FLOW).to[0]

    assert (recipient.upload, recipient.verify) == ("atomic", "read-back")


# --------------------------------------------------------------------------- NHS MESH recipients

_MESH = {"mailbox": "X26ABC2", "workflow_id": "ISP_TRANSFER", "connection": "mesh_out"}


def _mesh_flow(**recipient_changes):
    flow = dict(_SAMPLE_FLOW)
    recipient = {k: v for k, v in flow["to"][0].items() if k not in ("sftp", "path")}
    recipient.update(recipient_changes)
    flow["to"] = [recipient]
    return flow


def test_a_mesh_recipient_validates_without_sftp_or_path():
    recipient = Flow.model_validate(_mesh_flow(mesh=_MESH)).to[0]

    assert (recipient.sftp, recipient.path, recipient.mesh.mailbox) == (None, None, "X26ABC2")
    with pytest.raises(ConfigError, match="reached by MESH"):
        _ = recipient.sftp_connection


def test_a_recipient_without_sftp_is_unchanged():
    recipient = Flow.model_validate(_SAMPLE_FLOW).to[0]

    assert recipient.mesh is None and recipient.sftp_connection == recipient.sftp and recipient.remote_path


def test_both_or_neither_transport_is_refused_naming_file_flow_and_recipient(config_dir):
    def both(data):
        data["flows"][0]["to"][0]["mesh"] = _MESH
    path = edit(config_dir, both)

    message = problems(config_dir)

    assert str(path) in message and "flows[0].to[0]" in message
    assert "recipient 'south-yorkshire-police' needs exactly one of 'sftp' or 'mesh'" in message
    with pytest.raises(ValidationError, match="exactly one of 'sftp' or 'mesh'"):
        Flow.model_validate(_mesh_flow())


def test_a_mesh_recipient_takes_no_path_and_checks_its_ids():
    with pytest.raises(ValidationError, match="'path' is for sftp"):
        Flow.model_validate(_mesh_flow(mesh=_MESH, path="in"))
    with pytest.raises(ValidationError, match="mailbox"):
        Flow.model_validate(_mesh_flow(mesh=dict(_MESH, mailbox="../x")))
    with pytest.raises(ValidationError, match="path"):
        Flow.model_validate(_mesh_flow(sftp="sftp_x"))
