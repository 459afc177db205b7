"""IG commands: ``report ig`` (evidence for the IG officer) and ``agreement render`` (the Tier 2 document).

Registered from ``transfers.cli`` with one line. ``report`` is shared with other
report commands: ``ig`` joins the existing ``report`` group if one is registered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from transfers.errors import TransferError


def _group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


def report_ig(
    from_: Annotated[str | None, typer.Option("--from", help="first date YYYY-MM-DD (default 30 days ago)")] = None,
    to: Annotated[str | None, typer.Option("--to", help="last date YYYY-MM-DD (default today)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="directory (default <home>/ig-reports)")] = None,
    now: Annotated[str | None, typer.Option("--now", help="judge holdings and reviews as on this date")] = None,
) -> None:
    """Write the IG report (HTML and CSV): disclosures, shares without consent, destruction, holdings, reviews."""
    from transfers.agreement import load_config
    from transfers.cli import _fail, _parse_date, _settings, err, out
    from transfers.reports.ig import build, write_ig_report

    settings = _settings()
    end = _parse_date(to, "--to")
    start = _parse_date(from_, "--from") if from_ else end - timedelta(days=30)
    if start > end:
        err.print(f"[bold red]error:[/] --from {start} is after --to {end}")
        raise typer.Exit(2)
    moment = datetime.combine(_parse_date(now, "--now"), datetime.now(UTC).time(), UTC) if now else datetime.now(UTC)
    try:
        config = load_config(settings.config_dir)
        with settings.open_ledger() as ledger:
            doc = build(settings, config, ledger, start, end, now=moment)
        paths = write_ig_report(doc, out_dir or settings.home / "ig-reports")
    except TransferError as exc:
        _fail(exc)
    t = doc["totals"]
    out.print(f"{t['disclosures']} disclosure(s), {t['rows']} records; {t['without_consent']} share(s) without "
              f"consent; {t['purged']} cop(ies) destroyed, {t['purge_failures']} failed; {t['held']} held, "
              f"{t['overdue']} overdue; {t['lapsed']} agreement(s) lapsed, {t['due_for_review']} due for review")
    for path in paths:
        out.print(f"  {escape(str(path))}", highlight=False)


def agreement_render(
    agreement_id: Annotated[str, typer.Argument(help="agreement id, e.g. mash-referrals")],
    fmt: Annotated[str, typer.Option("--format", help="html or md")] = "html",
    output: Annotated[Path | None, typer.Option("--out", help="file to write (default: print)")] = None,
) -> None:
    """Render a Tier 2 agreement as the document IG signs (layout of Appendix C)."""
    from transfers.agreement import load_config
    from transfers.agreement_doc import render
    from transfers.cli import _fail, _settings, err, out

    if fmt not in ("html", "md"):
        err.print(f"[bold red]error:[/] --format {fmt!r}: use html or md")
        raise typer.Exit(2)
    settings = _settings()
    try:
        config = load_config(settings.config_dir)
        text = render(config, agreement_id, fmt)
    except TransferError as exc:
        _fail(exc)
    if output is None:
        print(text)
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"written {escape(str(output))}", highlight=False)


def agreement_schema(
    output: Annotated[Path | None, typer.Option("--out", help="file to write (default: print)")] = None,
) -> None:
    """The JSON Schema of an agreement file, for editors that complete and check YAML as you type."""
    import json

    from transfers.agreement import Agreement
    from transfers.cli import out

    schema = Agreement.model_json_schema(by_alias=True)
    schema["title"] = "Tier 2 data sharing agreement (isp-transfers)"
    text = json.dumps(schema, indent=2) + "\n"
    if output is None:
        print(text, end="")
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"written {escape(str(output))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``report ig``, ``agreement render`` and ``agreement schema`` to the ``transfers`` app."""
    _group(app, "report", "Reports for people.").command("ig")(report_ig)
    agreement = _group(app, "agreement", "Tier 2 agreements as documents.")
    agreement.command("render")(agreement_render)
    agreement.command("schema")(agreement_schema)
