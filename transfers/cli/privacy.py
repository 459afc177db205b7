"""``transfers consent withdraw``, ``transfers correct`` and ``transfers subject history``.

The identifier given on the command line is only ever used to compute each
agreement's keyed lookup; it is never printed, logged or recorded. Pass ``-``
to read it from standard input instead, keeping it out of shell history and
the process list.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from transfers.cli._console import EXIT_CONFIG, EXIT_LEDGER, JsonFlag, err, fail, load_settings, out, print_json
from transfers.errors import ConfigError, TransferError
from transfers.privacy.trail import subject_lookups

if TYPE_CHECKING:
    from transfers.agreement import Config
    from transfers.notices import Kind
    from transfers.settings import Settings

SUBJECT_HELP = "the subject's identifier (e.g. NHS number); '-' reads it from standard input"


def _identifier(value: str) -> str:
    text = sys.stdin.readline() if value == "-" else value
    if not text.strip():
        raise ConfigError("no subject identifier given")
    return text.strip()


def privacy_summary(prepared: dict, notices: dict | None = None) -> str:
    """One line for ``transfers run``: exclusions by reason, deceased handling, k, notices sent."""
    from transfers.consent import reason_label

    parts = []
    excluded = prepared.get("excluded") or {}
    if excluded:
        parts.append("excluded " + ", ".join(f"{n} {reason_label(reason)}" for reason, n in excluded.items()))
    if prepared.get("opt_outs_overridden"):
        parts.append("sent despite " + ", ".join(f"{n} {reason_label(r)}"
                                                for r, n in prepared["opt_outs_overridden"].items()))
    if (deceased := prepared.get("deceased")) and deceased.get("sent_with_caution"):
        parts.append(f"{deceased['sent_with_caution']} deceased sent with caution")
    if prepared.get("basis") == "statutory":
        parts.append("shared without consent (recorded in the ledger)")
    if (k := prepared.get("k")) and k.get("k") is not None:
        parts.append(f"k={k['k']} on {', '.join(k['quasi_identifiers'])}"
                     + ("" if k["passed"] else f" (below min_k {k['min_k']})"))
    if notices and notices.get("sent"):
        parts.append(f"{notices['sent']} withdrawal notice(s) sent")
    return "privacy: " + "; ".join(parts) if parts else ""


consent_app = typer.Typer(help="Consent: tell partners when it is withdrawn.", no_args_is_help=True)
subject_app = typer.Typer(help="One data subject's trail (subject access requests, complaints).",
                          no_args_is_help=True)


def _notices(kind: Kind, subject: str, occasion: str, fields: list[str], *, register: bool = False) -> None:
    from transfers.agreement import load_config
    from transfers.connections import cli_connection, cli_secret
    from transfers.notices import send_notices

    settings = load_settings()
    try:
        config = load_config(settings.config_dir)
        lookups = subject_lookups(config, _identifier(subject), cli_secret)
        if register:
            # Before any notice: a partner that cannot be reached must not delay the exclusion.
            _record_withdrawal(settings, config, lookups)
        with settings.open_ledger() as ledger:
            results = send_notices(settings, config, ledger, cli_connection, cli_secret, kind=kind, lookups=lookups,
                                   occasion=occasion, fields=fields)
    except TransferError as exc:
        fail(exc)
    if not results:
        out.print(f"no partner has received this subject: no {kind} notice sent")
        return
    for r in results:
        out.print(f"{r.flow} -> {r.recipient}: {kind} notice {r.status} "
                  f"({escape(r.remote_path or '')}, ledger entry {r.ledger_seq})", highlight=False)


def _record_withdrawal(settings: Settings, config: Config, lookups: dict[str, str]) -> None:
    from transfers.ledger.records import Withdrawal
    from transfers.privacy.subjects import SubjectIndex

    unkeyed = sorted(item.agreement.id for item in config.agreements if item.agreement.id not in lookups)
    if not lookups:
        raise ConfigError("no agreement has a pseudonymisation key, so the withdrawals register cannot hold "
                          f"this subject ({', '.join(unkeyed) or 'no agreements'}); nothing was recorded or sent")
    index = SubjectIndex.for_settings(settings)
    ledger = settings.open_ledger()
    try:
        for agreement_id, lookup in sorted(lookups.items()):
            new = index.record_withdrawal(agreement_id, lookup)
            # The chained entry is what `subject verify` holds the register to, so a row
            # deleted from the register (and the subject sent again) shows.
            ledger.record(Withdrawal(agreement=agreement_id, lookup=lookup))
            item = next(a for a in config.agreements if a.agreement.id == agreement_id)
            overriding = [f.id for f in item.agreement.flows if f.consent.override_opt_outs]
            unless = (f" (flow(s) {', '.join(overriding)} override withdrawals on a statutory ground: they "
                      "still send it and record that)" if overriding else "")
            out.print(f"{agreement_id}: withdrawal {'recorded' if new else 'already recorded'} in the "
                      f"withdrawals register; later runs of its flows exclude this subject{unless}",
                      highlight=False)
    finally:
        index.close()
        ledger.close()
    for agreement_id in unkeyed:
        err.print(f"[yellow]warning:[/] {agreement_id}: no pseudonymisation key, so its withdrawals "
                  "register cannot hold this subject; record the withdrawal in the source's consent "
                  "register", highlight=False)


@consent_app.command("withdraw")
def withdraw(subject: Annotated[str, typer.Argument(help=SUBJECT_HELP)]) -> None:
    """Record a withdrawal and tell every partner that received the subject (once per partner and flow).

    The subject goes into each agreement's withdrawals register (by keyed lookup, never the
    identifier), which every later run of the agreement's flows applies on top of the source's
    consent register; a statutory flow that overrides withdrawals still sends it, and records that.
    """
    _notices("withdrawal", subject, "withdrawn", [], register=True)


def correct(
    subject: Annotated[str, typer.Argument(help=SUBJECT_HELP)],
    fields: Annotated[str, typer.Option("--fields", help="comma-separated names of the fields rectified")],
    reference: Annotated[str, typer.Option("--reference", help="your rectification reference (one notice "
                                                               "per reference and partner)")],
) -> None:
    """Send a correction notice to every partner that received a record of the subject now rectified."""
    names = [f.strip() for f in fields.split(",") if f.strip()]
    if not names:
        err.print("[bold red]error:[/] --fields names no field")
        raise typer.Exit(EXIT_CONFIG)
    _notices("correction", subject, f"correction:{reference}", names)


@subject_app.command("verify")
def verify() -> None:
    """Check the subjects recorded for every disclosure against the count and hash in its ledger entry."""
    from transfers.privacy.subjects import SubjectIndex, verify_subjects

    settings = load_settings()
    try:
        index = SubjectIndex.for_settings(settings)
        try:
            with settings.open_ledger() as ledger:
                checked, problems = verify_subjects(ledger, index)
        finally:
            index.close()
    except TransferError as exc:
        fail(exc)
    if problems:
        err.print(f"[bold red]subject records FAILED verification[/] ({len(problems)} disclosure(s)):")
        for problem in problems:
            err.print(f"  - {escape(problem)}", highlight=False)
        raise typer.Exit(EXIT_LEDGER)
    out.print(f"[green]subject records ok[/]: {checked} disclosure(s) match their ledger entries")


@subject_app.command("history")
def history(
    subject: Annotated[str, typer.Argument(help=SUBJECT_HELP)],
    as_json: JsonFlag = False,
) -> None:
    """Every disclosure, exclusion and notice that concerned one person; nothing at all for a stranger.

    With --json, one line per event (the same cells as the printed lines, named); never the identifier.
    """
    from transfers.agreement import load_config
    from transfers.connections import cli_secret
    from transfers.privacy.trail import TRAIL_HEADINGS, subject_trail

    settings = load_settings()
    try:
        config = load_config(settings.config_dir)
        rows = subject_trail(settings, subject_lookups(config, _identifier(subject), cli_secret))
    except TransferError as exc:
        fail(exc)
    if not rows:
        # Stdout stays empty (nothing concerns this person); the note is for the reader.
        err.print("no disclosure, exclusion or notice is recorded for this subject", highlight=False)
        return
    if as_json:  # the same cells, named; null where the line shows "-"
        print_json({name: None if value == "-" else int(value) if name == "ledger_entry" else value
                    for name, value in dataclasses.asdict(row).items()} for row in rows)
        return
    # One plain line per event (no table): it is copied into SAR responses and complaint files whole.
    out.print("\t".join(TRAIL_HEADINGS), highlight=False)
    for row in rows:
        out.print(escape("\t".join(row.cells())), highlight=False)
