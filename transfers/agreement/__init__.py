"""Tier 1 register and Tier 2 agreements: load, check, and decide if a flow may run.

An agreement is written once as YAML under ``config/agreements/`` in the shape of
Appendix C of the protocol. It is the single source for the document IG signs
and for the DAGs that run. Loading reports every problem at once, each naming
the file and the key path, e.g.::

    config/agreements/mash-referrals.yaml: flows[0].to[0].partner: 'syp' is not a
    partner of this agreement (partners: rotherham-childrens-services, ...)

Modules: ``common`` (ids, paths; periods are ``durations.IsoDuration``), ``protocol`` (Tier 1), ``flow``
(a data flow), ``retention`` (a flow's retention periods), ``tier2`` (the agreement), ``load`` (reading and
checking config/), ``party`` (the flows this deployment sends and receives: ``TRANSFERS_PARTY``),
``signoff`` (each partner's detached signature of the agreement file: sign, verify;
imported as ``transfers.agreement.signoff``, not re-exported here, as it loads the OpenPGP package).
"""

from transfers.agreement.common import DIMENSIONS, ConnectionId, Dimension, Policy, check_relative_path
from transfers.agreement.flow import (
    Deceased,
    DisclosureRisk,
    FieldChecks,
    FieldSpec,
    Flow,
    QualityPolicy,
    Recipient,
    SharingBasis,
    Source,
    SubjectSource,
)
from transfers.agreement.load import (
    Config,
    FlowRef,
    LoadedAgreement,
    check_live,
    load_config,
    load_protocol,
    retention_periods,
)
from transfers.agreement.party import (
    Direction,
    Inbound,
    Sides,
    check_party,
    receive_dag_id,
    receiving_flows,
    sending_flows,
    sides,
)
from transfers.agreement.protocol import Named, Protocol, ProtocolInfo, Signatory
from transfers.agreement.retention import ArchiveRetention, FlowRetention, RemoteRetention
from transfers.agreement.tier2 import (
    Agreement,
    Contact,
    ContactRole,
    ControllerRetention,
    Owner,
    Pseudonymisation,
    Revision,
)

__all__ = [
    "DIMENSIONS", "Agreement", "ArchiveRetention", "Config", "ConnectionId", "Contact", "ContactRole",
    "ControllerRetention", "Deceased",
    "Dimension", "Direction", "DisclosureRisk", "FieldChecks", "FieldSpec", "Flow", "FlowRef", "FlowRetention",
    "Inbound", "LoadedAgreement", "Named", "Owner", "Policy", "Protocol", "ProtocolInfo", "Pseudonymisation",
    "QualityPolicy", "Recipient", "RemoteRetention", "Revision", "SharingBasis", "Sides", "Signatory", "Source",
    "SubjectSource", "check_live", "check_party", "check_relative_path", "load_config", "load_protocol",
    "receive_dag_id", "receiving_flows", "retention_periods", "sending_flows", "sides",
]
