"""Who am I: which flows a deployment sends and which it receives, from the agreements every partner holds.

A deployment names its own party with ``TRANSFERS_PARTY`` (a Tier 1 signatory id). From the same
agreement files, it sends the flows ``from`` it and receives the flows with it among ``to``. With no
party set, a single deployment sends every flow (the demo's behaviour) and receives none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from transfers.agreement.flow import Recipient
from transfers.agreement.load import Config, FlowRef
from transfers.errors import ConfigError

Direction = Literal["send", "receive"]


@dataclass(frozen=True)
class Inbound:
    """A flow this party receives, with its own entry among the flow's recipients (its inbox path, its key)."""

    ref: FlowRef
    recipient: Recipient

    @property
    def key(self) -> str:
        return self.ref.key


@dataclass(frozen=True)
class Sides:
    """One party's flows, each way; ``warning`` says why it has none, if it has none."""

    party: str | None
    sending: tuple[FlowRef, ...]
    receiving: tuple[Inbound, ...]
    warning: str | None = None

    def directions(self, ref: FlowRef) -> list[Direction]:
        """How this party takes part in ``ref``: ``["send"]``, ``["receive"]``, or ``[]`` for another's flow."""
        found: list[Direction] = []
        if any(s.key == ref.key for s in self.sending):
            found.append("send")
        if any(r.key == ref.key for r in self.receiving):
            found.append("receive")
        return found


def check_party(config: Config, party: str) -> None:
    """Refuse a party that is not a Tier 1 signatory.

    Raises:
        ConfigError: naming the party and listing the signatories.
    """
    if config.protocol.signatory(party) is None:
        known = ", ".join(s.id for s in config.protocol.signatories) or "none"
        raise ConfigError(f"TRANSFERS_PARTY: {party!r} is not a Tier 1 signatory in "
                          f"{config.root / 'protocol.yaml'} (signatories: {known})")


def sending_flows(config: Config, party: str | None) -> list[FlowRef]:
    """The flows ``party`` sends (``from`` is the party); every flow when ``party`` is None.

    Raises:
        ConfigError: ``party`` is not a Tier 1 signatory.
    """
    if party is None:
        return config.flows()
    check_party(config, party)
    return [ref for ref in config.flows() if ref.flow.from_ == party]


def receiving_flows(config: Config, party: str | None) -> list[Inbound]:
    """The flows ``party`` is a recipient of, each with its recipient entry; none when ``party`` is None.

    Raises:
        ConfigError: ``party`` is not a Tier 1 signatory.
    """
    if party is None:
        return []
    check_party(config, party)
    return [Inbound(ref, recipient) for ref in config.flows() for recipient in ref.flow.to
            if recipient.partner == party]


def sides(config: Config, party: str | None) -> Sides:
    """Both directions for ``party`` at once, with a warning (not an error) if it has nothing to do.

    Raises:
        ConfigError: ``party`` is not a Tier 1 signatory.
    """
    sending, receiving = tuple(sending_flows(config, party)), tuple(receiving_flows(config, party))
    warning = None
    if party is not None and not sending and not receiving:
        member = [a.agreement.id for a in config.agreements if party in a.agreement.partners]
        where = (f"it is a partner of {', '.join(member)} but no flow there is from or to it" if member
                 else "it is a partner of no agreement")
        warning = (f"TRANSFERS_PARTY {party!r}: nothing to send or receive under {config.root} ({where}); "
                   "no flow DAGs are built")
    return Sides(party, sending, receiving, warning)


def receive_dag_id(ref: FlowRef) -> str:
    """The receive DAG's id: the send DAG's (``ref.key``, ``<agreement>.<flow>``) after ``receive_``."""
    return f"receive_{ref.key}"
