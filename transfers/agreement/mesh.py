"""How a recipient is reached over NHS MESH (``mesh:`` in a flow's recipient entry, instead of ``sftp``)."""

from __future__ import annotations

from pydantic import Field

from transfers.agreement.common import ConnectionId, _Strict

_MESH_ID = r"^[A-Za-z0-9_-]{1,64}$"


class MeshRoute(_Strict):
    """A recipient reached through NHS MESH instead of SFTP (``transfers.delivery.mesh``).

    ``connection`` names an Airflow connection holding the party's *own* MESH mailbox (at the sender, the
    sending mailbox; at the recipient, ``mailbox`` itself): ``login`` =
    mailbox id, ``password`` = mailbox password, ``host`` = the MESH base URL (``https://...``),
    ``extra`` = ``{"shared_key": ..., "cert": ..., "key": ..., "ca": ...}`` (client certificate, key
    and CA bundle paths for the real MESH; none for the local sandbox).
    """

    mailbox: str = Field(pattern=_MESH_ID)  # the recipient's MESH mailbox id
    workflow_id: str = Field(pattern=_MESH_ID)  # the MESH workflow id both mailboxes are registered for
    connection: ConnectionId  # in each deployment: that party's own mailbox (the recipient's login = mailbox)
    # The workflow the recipient returns its signed receipt under (to the delivery's sending mailbox); none: the
    # receipt is not sent over MESH.
    receipt_workflow_id: str | None = Field(default=None, pattern=_MESH_ID)


__all__ = ["MeshRoute"]
