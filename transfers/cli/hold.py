"""``transfers hold add|remove|list``: legal holds that keep received data past the controller's date.

A hold names one delivery (``--delivery``, its id as in the receipts) or one subject (``--subject``,
the pseudonym the flow's subject column holds, in every delivery of ``--agreement``). While it is in
force, ``transfers purge`` and the retention DAG destroy nothing it covers and list it as held.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.text import Text

from transfers.cli._console import JsonFlag, fail, key, lines, load_settings, new_table, out, print_json, when
from transfers.errors import ConfigError, TransferError

if TYPE_CHECKING:
    from transfers.agreement import Config
    from transfers.ledger import Ledger
    from transfers.settings import Settings

app = typer.Typer(help="Legal holds: keep received data past its destroy-by date (litigation, an investigation).",
                  no_args_is_help=True)

Delivery = Annotated[str | None, typer.Option("--delivery", help="a delivery id, e.g. "
                                              "mash-referrals:A:2026-11-25:south-yorkshire-police")]
Subject = Annotated[str | None, typer.Option("--subject", help="a subject's pseudonym, as the received tables hold it")]
Agreement = Annotated[str | None, typer.Option("--agreement", help="with --subject: the agreement whose tables hold "
                                               "the pseudonym (default: the only agreement this party receives)")]
Reason = Annotated[str, typer.Option("--reason", help="why: a case or matter reference, never a person's name")]
LiftReason = Annotated[str, typer.Option("--reason", help="why it is lifted (a case or matter reference)")]
By = Annotated[str | None, typer.Option("--by", help="who (default: the OS user)")]


def add(reason: Reason, delivery: Delivery = None, subject: Subject = None, agreement: Agreement = None,
        by: By = None) -> None:
    """Place a legal hold on a delivery or a subject: nothing it covers is destroyed until it is lifted."""
    from transfers.retention.holds import add_hold

    with _ledger() as (settings, config, ledger):
        try:
            scope, where, target = _target(settings, config, ledger, delivery, subject, agreement)
            hold = add_hold(ledger, scope=scope, agreement=where, target=target, reason=reason, by=by)
        except TransferError as exc:
            fail(exc)
    out.print(f"held: the {scope} {escape(_shown(scope, target))} in {where} (ledger entry {hold.seq}, by "
              f"{escape(hold.by)}): {escape(hold.reason)}", highlight=False, emoji=False)


def remove(delivery: Delivery = None, subject: Subject = None, agreement: Agreement = None,
           reason: LiftReason = "hold lifted", by: By = None) -> None:
    """Lift the legal hold on a delivery or a subject: the next purge destroys what is due."""
    from transfers.retention.holds import lift_hold

    with _ledger() as (settings, config, ledger):
        try:
            scope, where, target = _target(settings, config, ledger, delivery, subject, agreement)
            lift_hold(ledger, scope=scope, agreement=where, target=target, reason=reason, by=by)
        except TransferError as exc:
            fail(exc)
    out.print(f"lifted: the hold on the {scope} {escape(_shown(scope, target))} in {where}; the next purge "
              f"destroys what is due", highlight=False, emoji=False)


def list_holds(as_json: JsonFlag = False) -> None:
    """The legal holds in force: what, in which agreement, since when, by whom, why."""
    from transfers.retention.holds import active_holds

    with _ledger() as (_settings, _config, ledger):
        try:
            holds = active_holds(ledger)
        except TransferError as exc:
            fail(exc)
    if as_json:
        print_json(dataclasses.asdict(h) for h in holds)
        return
    if not holds:
        out.print("no legal hold is in force")
        return
    table = new_table(key("#"), "held", "since (UTC), by", "reason", title="Legal holds in force")
    for h in holds:
        # Text, not markup: an id like "x:A:..." is neither markup nor an emoji code.
        table.add_row(str(h.seq), Text(lines(f"{h.scope} in {h.agreement}", h.target)),
                      Text(lines(when(h.since), h.by)), Text(h.reason))
    out.print(table)


app.command("add")(add)
app.command("remove")(remove)
app.command("list")(list_holds)


class _ledger:
    """The config and the ledger, opened for one command; a config error ends it with its exit code."""

    def __enter__(self) -> tuple[Settings, Config, Ledger]:
        from transfers.agreement import load_config

        settings = load_settings()
        try:
            config = load_config(settings.config_dir)
            self.ledger = settings.open_ledger()
        except TransferError as exc:
            fail(exc)
        return settings, config, self.ledger

    def __exit__(self, *_exc: object) -> None:
        self.ledger.close()


def _shown(scope: str, target: str) -> str:
    return target if scope == "delivery" else "(pseudonym given)"


def _target(settings: Settings, config: Config, ledger: Ledger, delivery: str | None, subject: str | None,
            agreement: str | None) -> tuple[str, str, str]:
    """``(scope, agreement, target)`` from the options; a usage error names what is wrong."""
    from transfers.agreement import receiving_flows
    from transfers.ledger.records import Received

    if (delivery is None) == (subject is None):
        raise ConfigError("name exactly one of --delivery ID or --subject PSEUDONYM")
    if delivery is not None:
        if agreement is not None:
            raise ConfigError("--agreement goes with --subject; a delivery id names its agreement")
        if not any(r.delivery_id == delivery for r in ledger.records(Received)):
            raise ConfigError(f"delivery {delivery!r} was never received here (no receipt in the ledger); "
                              f"see the delivery ids in transfers receipts or the store's register")
        return "delivery", delivery.split(":", 1)[0], delivery
    received = sorted({i.ref.agreement.id for i in receiving_flows(config, settings.party)})
    if agreement is None:
        if len(received) != 1:
            raise ConfigError(f"name the agreement with --agreement (this party receives under "
                              f"{', '.join(received) or 'no agreement'})")
        agreement = received[0]
    elif agreement not in received:
        raise ConfigError(f"--agreement {agreement!r}: this party receives no flow under it "
                          f"(it receives under {', '.join(received) or 'no agreement'})")
    return "subject", agreement, str(subject)
