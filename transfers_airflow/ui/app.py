"""The FastAPI app the plugin mounts in Airflow's API server at ``/transfers``: server-rendered pages.

Pages (each needs a signed-in Airflow user; who may see which: ``transfers_airflow.ui.auth``):
    /                                    the configured agreements' flows, with links
    /dags/{dag_id}                       where a DAG page's "Transfers" tab lands: its flow's page
    /flows/{agreement}/{flow}            the flow's scorecards and rectification notices (latest first),
                                         receipts and destruction at its recipients
    /flows/{agreement}/{flow}/quality    the latest scorecard
    /flows/{agreement}/{flow}/report?file=NAME   any report file the flow's page lists, by that name only
    /agreements/{agreement}              the rendered Tier 2 agreement (``transfers agreement render``)
    /ig?from=&to=                        the IG report, rendered on request (``transfers report ig``; IG role)
    /subjects                            a subject look-up for subject access requests (IG role)

The scorecards, notices, agreement and IG report are the very templates the files are made from;
the few pages of the app's own (index, flow, look-up) are small templates beside this module.
Every response forbids loading anything (``default-src 'none'``, inline CSS only), is never cached
(the pages describe people's records), and may be framed only by Airflow's own UI.

Heavy imports (the agreement loader, the ledger, Airflow's security module) happen inside the
handlers: every Airflow process loads plugins, and only the API server serves these pages.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

if TYPE_CHECKING:
    from transfers.agreement import Config, FlowRef
    from transfers.settings import Settings

log = logging.getLogger(__name__)

#: The form field of the subject look-up; sent by POST so the identifier is in no URL, log or history.
IDENTIFIER = "identifier"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_env = Environment(
    loader=PackageLoader("transfers_airflow.ui", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_bearer = HTTPBearer(auto_error=False)


async def current_user(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Any:
    """The signed-in Airflow user, checked by the API server's own ``get_user`` (cookie or bearer JWT)."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, None, bearer)


User = Annotated[Any, Depends(current_user)]


def _page(template: str, request: Request, code: int = 200, **values: Any) -> HTMLResponse:
    base = request.scope.get("root_path", "").rstrip("/")
    return HTMLResponse(_env.get_template(template).render(base=base, code=code, **values), status_code=code)


def _settings_and_config() -> tuple[Settings, Config]:
    from transfers.agreement import load_config
    from transfers.settings import Settings

    settings = Settings()
    return settings, load_config(settings.config_dir)


def _dag_ids(ref: FlowRef) -> list[str]:
    from transfers.agreement import receive_dag_id

    return [ref.key, receive_dag_id(ref)]  # the flow's send DAG, or its receive DAG at a recipient


def _flow(config: Config, agreement: str, flow: str) -> FlowRef:
    ref = next((r for r in config.flows() if r.agreement.id == agreement and r.flow.id == flow), None)
    if ref is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no flow {agreement}.{flow} in the configured agreements")
    return ref


def _mirror(settings: Settings, agreement: str, flow: str) -> None:
    """The flow's reports published by tasks on any worker (an S3 work store), into this home before listing.

    A store that cannot be read leaves the page with what this home holds (logged), rather than no page.
    """
    from transfers.errors import TransferError
    from transfers.workstore.mirror import mirror_reports
    from transfers_airflow.resolvers import connection

    try:
        mirror_reports(settings, agreement, flow, connection)
    except TransferError as exc:
        log.warning("published reports of %s.%s not mirrored: %s", agreement, flow, exc)


def create_app() -> FastAPI:
    """The pages' app; Airflow mounts it at ``URL_PREFIX``."""
    from transfers.errors import TransferError
    from transfers_airflow.ui import auth

    app = FastAPI(title="isp-transfers pages", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException too, and the router's own 404
    async def _refused(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        login = auth.login_url(request) if exc.status_code == status.HTTP_401_UNAUTHORIZED else None
        return _page("error.html.j2", request, exc.status_code, message=str(exc.detail), login=login)

    @app.exception_handler(TransferError)
    async def _failed(request: Request, exc: TransferError) -> HTMLResponse:
        # Our errors name the file, field or host and the next step, never a secret or a record value.
        return _page("error.html.j2", request, status.HTTP_503_SERVICE_UNAVAILABLE, message=str(exc), login=None)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, user: User) -> HTMLResponse:
        _settings, config = _settings_and_config()
        flows = [ref for ref in config.flows() if any(auth.can_read_dag(user, d) for d in _dag_ids(ref))]
        start, end = _period(None, None)  # the IG report's form starts at its default period
        return _page(
            "index.html.j2",
            request,
            flows=flows,
            names=config.protocol.name_of,
            user=user.get_name(),
            ig=auth.is_ig(user),
            start=start.isoformat(),
            end=end.isoformat(),
        )

    @app.get("/dags/{dag_id}")
    def dag(request: Request, dag_id: str, user: User) -> RedirectResponse:
        _settings, config = _settings_and_config()
        base = request.scope.get("root_path", "").rstrip("/")
        ref = next((r for r in config.flows() if dag_id in _dag_ids(r)), None)
        target = f"{base}/flows/{ref.agreement.id}/{ref.flow.id}" if ref else f"{base}/"
        return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)

    @app.get("/flows/{agreement}/{flow}", response_class=HTMLResponse)
    def flow_page(request: Request, agreement: str, flow: str, user: User) -> HTMLResponse:
        from transfers.reports.files import flow_reports
        from transfers.reports.reading import flow_statuses

        settings, config = _settings_and_config()
        ref = _flow(config, agreement, flow)
        auth.require_dag(user, _dag_ids(ref))
        _mirror(settings, agreement, flow)
        now = datetime.now(UTC)
        with settings.open_ledger() as ledger:
            # One read of this flow's entries only, however many flows the ledger holds.
            receipts, destruction = flow_statuses(
                ledger, config, ref.key, grace_days=settings.destruction_grace_days, now=now
            )
        return _page(
            "flow.html.j2",
            request,
            ref=ref,
            names=config.protocol.name_of,
            reports=flow_reports(settings, agreement, flow),
            receipts=receipts,
            destruction=destruction,
            now=now,
        )

    @app.get("/flows/{agreement}/{flow}/quality")
    def latest_quality(agreement: str, flow: str, user: User) -> Response:
        from transfers.reports.files import flow_reports

        settings, config = _settings_and_config()
        ref = _flow(config, agreement, flow)
        auth.require_dag(user, _dag_ids(ref))
        _mirror(settings, agreement, flow)
        found = next(
            (
                r
                for r in flow_reports(settings, agreement, flow)
                if r.kind == "quality" and not r.dry_run and r.path.suffix == ".html"
            ),
            None,
        )
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"no quality scorecard yet for {ref.key}: the flow's quality step writes one each run",
            )
        return Response(found.path.read_bytes(), media_type=found.media_type)

    @app.get("/flows/{agreement}/{flow}/report")
    def report_file(agreement: str, flow: str, user: User, file: str = "") -> Response:
        from transfers.reports.files import report_file

        settings, config = _settings_and_config()
        ref = _flow(config, agreement, flow)
        auth.require_dag(user, _dag_ids(ref))
        _mirror(settings, agreement, flow)
        found = report_file(settings, agreement, flow, file)  # only a name the flow's listing holds
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"{ref.key} has no report file of that name: pick one from the flow's page"
            )
        return Response(found.path.read_bytes(), media_type=found.media_type)

    @app.get("/agreements/{agreement}", response_class=HTMLResponse)
    def agreement_page(agreement: str, user: User) -> HTMLResponse:
        from transfers.agreement_doc import render

        settings, config = _settings_and_config()
        refs = [r for r in config.flows() if r.agreement.id == agreement]
        if not refs:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agreement {agreement!r} with flows in the config")
        auth.require_dag(user, [d for r in refs for d in _dag_ids(r)])
        return HTMLResponse(render(config, agreement, "html", keys_dir=settings.keys))

    @app.get("/ig", response_class=HTMLResponse)
    def ig(request: Request, user: User) -> HTMLResponse:
        from transfers.reports.ig import build, render_html
        from transfers_airflow.resolvers import connection

        auth.require_ig(user)
        start, end = _period(request.query_params.get("from"), request.query_params.get("to"))
        settings, config = _settings_and_config()
        with settings.open_ledger() as ledger:  # S3 archives' connections through Airflow's, as the CLI's
            doc = build(settings, config, ledger, start, end, now=datetime.now(UTC), connection=connection)
        return HTMLResponse(render_html(doc))

    @app.get("/subjects", response_class=HTMLResponse)
    def subject_form(request: Request, user: User) -> HTMLResponse:
        auth.require_ig(user)
        return _page("subject.html.j2", request, rows=None)

    @app.post("/subjects", response_class=HTMLResponse)
    async def subject_lookup(request: Request, user: User) -> HTMLResponse:
        from starlette.concurrency import run_in_threadpool

        auth.require_ig(user)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        identifier = (form.get(IDENTIFIER) or [""])[0].strip()
        if not identifier:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "no subject identifier given")
        rows = await run_in_threadpool(_trail, identifier)
        # Who looked a subject up, and when, is kept in the API server's log for IG; never whom.
        log.info("subject look-up by Airflow user %s: %d event(s) found", user.get_name(), len(rows))
        return _page("subject.html.j2", request, rows=rows)

    return app


def _trail(identifier: str) -> list[Any]:
    """The subject's trail; the identifier only computes each agreement's keyed lookup and goes no further."""
    from transfers.privacy.trail import subject_lookups, subject_trail
    from transfers_airflow.resolvers import secret

    settings, config = _settings_and_config()
    return subject_trail(settings, subject_lookups(config, identifier, secret))


def _period(start: str | None, end: str | None) -> tuple[date, date]:
    """``?from=&to=`` as dates (default: the last 30 days, as ``transfers report ig``)."""
    try:
        last = date.fromisoformat(end) if end else datetime.now(UTC).date()
        first = date.fromisoformat(start) if start else last - timedelta(days=30)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "from and to are dates, YYYY-MM-DD") from None
    if first > last:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"from {first} is after to {last}")
    return first, last
