"""IG commands: ``report ig`` (evidence for the IG officer), ``agreement render`` (the Tier 2 document)
and ``agreement sign`` (a partner's sign-off of the agreement file, see ``transfers.agreement.signoff``).

``transfers.cli`` adds the ``agreement`` group and puts ``report_ig`` in its
``report`` group, beside ``report quality``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from transfers.cli._console import (
    EXIT_CONFIG,
    JsonFlag,
    OldNow,
    as_of_moment,
    as_of_option,
    err,
    fail,
    load_settings,
    out,
    parse_date,
    print_json,
)
from transfers.errors import KeyRefused, TransferError

agreement_app = typer.Typer(help="Tier 2 agreements as documents.", no_args_is_help=True)


def report_ig(
    from_: Annotated[str | None, typer.Option("--from", metavar="YYYY-MM-DD", help="first day recorded "
                                              "(default 30 days before --to)")] = None,
    to: Annotated[str | None, typer.Option("--to", metavar="YYYY-MM-DD", help="last day recorded "
                                           "(default today)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="directory (default <home>/ig-reports)")] = None,
    as_of: Annotated[str | None, as_of_option("judge holdings and reviews")] = None,
    now: OldNow = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the IG report (HTML and CSV): disclosures, shares without consent, destruction, holdings, reviews,
    consent exclusions, notices, each flow's basis and field sharing, pseudonym key ids, the ledger's verification.

    With --json, one line: the report's figures (as the HTML and CSVs show them) and the files written.
    """
    from transfers.agreement import load_config
    from transfers.connections import cli_connection
    from transfers.reports.ig import build, write_ig_report

    settings = load_settings()
    end = parse_date(to, "--to")
    start = parse_date(from_, "--from") if from_ else end - timedelta(days=30)
    if start > end:
        err.print(f"[bold red]error:[/] --from {start} is after --to {end}")
        raise typer.Exit(EXIT_CONFIG)
    moment = as_of_moment(as_of, now)
    try:
        config = load_config(settings.config_dir)
        with settings.open_ledger() as ledger:
            doc = build(settings, config, ledger, start, end, now=moment, connection=cli_connection)
        paths = write_ig_report(doc, out_dir or settings.layout.ig_reports)
    except TransferError as exc:
        fail(exc)
    if as_json:
        print_json([{**doc, "files": paths}])
        return
    t = doc["totals"]
    out.print(f"{t['disclosures']} disclosure(s), {t['rows']} records; {t['without_consent']} share(s) without "
              f"consent; {t['purged']} cop(ies) destroyed, {t['purge_failures']} failed; {t['held']} held, "
              f"{t['overdue']} overdue; {t['destroyed_at_recipients']} destroyed at recipients (certified), "
              f"{t['destruction_overdue']} overdue there; {t['lapsed']} agreement(s) lapsed, "
              f"{t['due_for_review']} due for review; {t['incidents']} security incident(s)")
    e = doc["evidence_totals"]
    ledger_state = (f"ledger verified to entry {e['ledger_head_seq']}" if e["ledger_ok"] else
                    "[bold red]ledger FAILED verification[/] (see the report's ledger section)")
    out.print(f"{e['excluded']} record(s) left out by consent, opt-out or death; {e['withdrawal_notices']} withdrawal "
              f"and {e['correction_notices']} correction notice(s) sent, {e['notices_confirmed']} confirmed; "
              f"pseudonym key id(s) {escape(', '.join(e['key_ids'])) or 'none'}; {ledger_state}")
    for path in paths:
        out.print(f"  {escape(str(path))}", highlight=False)


@agreement_app.command("render")
def agreement_render(
    agreement_id: Annotated[str, typer.Argument(help="agreement id, e.g. mash-referrals")],
    fmt: Annotated[str, typer.Option("--format", help="html or md")] = "html",
    output: Annotated[Path | None, typer.Option("--out", help="file to write (default: print)")] = None,
) -> None:
    """Render a Tier 2 agreement as the document IG signs (layout of Appendix C), with who signed this version."""
    from transfers.agreement import load_config
    from transfers.agreement_doc import render

    if fmt not in ("html", "md"):
        err.print(f"[bold red]error:[/] --format {fmt!r}: use html or md")
        raise typer.Exit(EXIT_CONFIG)
    settings = load_settings()
    try:
        config = load_config(settings.config_dir)
        text = render(config, agreement_id, fmt, keys_dir=settings.keys)
    except TransferError as exc:
        fail(exc)
    if output is None:
        print(text)
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"written {escape(str(output))}", highlight=False)


@agreement_app.command("sign")
def agreement_sign(
    agreement_id: Annotated[str, typer.Argument(help="agreement id, e.g. mash-referrals")],
) -> None:
    """Sign the agreement file's exact bytes with this party's signing key (transfers_signing_key).

    The partner is the one whose pinned signing_fingerprint is the key's; its detached
    signature is written (replacing an earlier one) as <file>.<partner>.asc beside the file.
    """
    from transfers.agreement import load_config
    from transfers.agreement.signoff import agreement_sha256, sign_agreement
    from transfers.connections import cli_secret
    from transfers.crypto import SIGNING_KEY_VAR, own_key_fingerprint, own_signing_key

    settings = load_settings()
    try:
        config = load_config(settings.config_dir)
        loaded = config.agreement(agreement_id)
        fingerprint = own_key_fingerprint(cli_secret(SIGNING_KEY_VAR))
        partner = next((p for p in loaded.agreement.partners if (s := config.protocol.signatory(p)) is not None
                        and s.signing_fingerprint == fingerprint), None)
        if partner is None:
            raise KeyRefused(f"signing key {fingerprint} is not the signing_fingerprint pinned for any partner of "
                             f"{loaded.agreement.id} ({', '.join(loaded.agreement.partners)}) in protocol.yaml")
        key = own_signing_key(cli_secret, partner, fingerprint)  # checked as the encrypt step checks it
        partner, path = sign_agreement(loaded.path, loaded.agreement, config.protocol, key)
    except TransferError as exc:
        fail(exc)
    out.print(f"signed {escape(loaded.agreement.id)} version {escape(loaded.agreement.version)} "
              f"(sha256 {agreement_sha256(loaded.path)[:12]}) for {escape(partner)} with key {key.fingerprint}: "
              f"{escape(str(path))}", highlight=False)


@agreement_app.command("schema")
def agreement_schema(
    output: Annotated[Path | None, typer.Option("--out", help="file to write (default: print)")] = None,
) -> None:
    """The JSON Schema of an agreement file, for editors that complete and check YAML as you type."""
    import json

    from transfers.agreement import Agreement

    schema = Agreement.model_json_schema(by_alias=True)
    schema["title"] = "Tier 2 data sharing agreement (isp-transfers)"
    text = json.dumps(schema, indent=2) + "\n"
    if output is None:
        print(text, end="")
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"written {escape(str(output))}", highlight=False)

