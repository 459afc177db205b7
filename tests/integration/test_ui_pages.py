"""The pages in the Airflow UI (``transfers_airflow.ui``), served by a real ``airflow api-server``.

One server for the module (it is slow to start): its own AIRFLOW_HOME, a migrated SQLite metadata
database, SimpleAuthManager with two users from a passwords file (``iggy`` holds the IG role through
``[transfers] ig_users``, ``owen`` is a data owner), and the TRANSFERS_* settings of a home where
this module first made a real run of flow A (PostgreSQL source, sshd, gpg). Real headless Chromium
signs in through Airflow's own login page and reads the pages; every request it makes goes through
a recording proxy, except those to the API server on 127.0.0.1.
"""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlencode

import pytest

from tests.conftest import require_part
from tests.integration.conftest import LOGICAL_DATE, World, make_world
from tests.integration.privacy_world import edit_agreement, flow_of
from tests.support.airflow_server import ApiServer, api_server
from tests.webdriver import browser, chromedriver_path
from transfers.devkit.synthetic import defect_rows, referrals, write_referrals_table
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

IG, OWNER = "iggy", "owen"
FLOW = "/transfers/flows/mash-referrals/A"
EARLIER = LOGICAL_DATE - timedelta(days=1)


@dataclass
class Site:
    world: World
    server: ApiServer
    report: dict  # the latest run's scorecard data, as its quality step wrote it
    subject: str  # an NHS number the latest run sent


@pytest.fixture(scope="module")
def site(tmp_path_factory, sshd, gpg_partner, gpg_sender, pg_source):
    require_part(
        "chromium and chromedriver", chromedriver_path() is not None, "apt-get install -y chromium chromium-driver"
    )
    root = tmp_path_factory.mktemp("ui")
    world = make_world(root, sshd, gpg_partner, gpg_sender, pg_source[0])
    # Two nights of flow A: a clean one, then one with a wrong NHS check digit, held back for the data
    # owner (accuracy: quarantine), so the flow has a past scorecard and a rectification notice.
    write_referrals_table(pg_source[0], referrals(40, EARLIER, seed=2))
    run_flow(world.run("mash-referrals.A", EARLIER), world.resolvers())
    edit_agreement(world, lambda d: flow_of(d, "A")["quality"]["on_failure"].update(accuracy="quarantine"))
    latest = referrals(40, LOGICAL_DATE, defects=["nhs_check_digit"])
    write_referrals_table(pg_source[0], latest)
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    held = defect_rows(40, ["nhs_check_digit"])["nhs_check_digit"]
    report = world.settings.layout.reports_dir("mash-referrals", "A") / f"quality_A_{LOGICAL_DATE}.json"
    settings = world.settings
    extra = {
        "TRANSFERS_HOME": str(settings.home),
        "TRANSFERS_CONFIG_DIR": str(settings.config_dir),
        "TRANSFERS_KEYS_DIR": str(settings.keys),
        "AIRFLOW_VAR_MASH_PSEUDONYM_KEY": world.secrets["mash_pseudonym_key"],
        "AIRFLOW__TRANSFERS__IG_USERS": IG,
    }
    with api_server(root / "airflow", {IG: "viewer", OWNER: "viewer"}, extra) as server:
        subject = next(n for i, n in enumerate(latest["nhs_number"]) if i != held)
        yield Site(world, server, json.loads(report.read_text()), subject)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the test reads the redirect itself


def _cell(dom: str, heading: str) -> str:
    """The text of the cell beside a ``<th>`` heading (a report's facts table)."""
    found = re.search(rf"<th>{heading}</th>\s*<td>\s*([^<]*?)\s*<", dom)
    assert found, f"{heading} not on the page"
    return found.group(1)


def _number(dom: str, element_id: str) -> int:
    found = re.search(rf'id="{element_id}"[^>]*>\s*(\d+)\s*<', dom)
    assert found, f"{element_id} not on the page"
    return int(found.group(1))


def test_an_ig_officer_signs_in_and_finds_the_runs_figures_with_no_outside_request(site):
    disclosures = list(site.world.settings.open_ledger().entries(kind="disclosure"))
    assert len(disclosures) == 2  # one a night: the IG report has something to count

    with browser(site.server.host_port) as page:
        page.get(f"{site.server.url}/auth/login?{urlencode({'next': f'{site.server.url}/transfers/'})}")
        page.type("input[name=username]", IG)
        page.type("input[name=password]", site.server.passwords[IG])
        page.click("button[type=submit]")
        page.until(
            lambda: page.url.endswith("/transfers/") and "Signed in to Airflow as" in page.source,
            "the login did not come back to the index",
        )

        page.click(f'a[href="{FLOW}"]')  # the index lists the flow
        page.wait_for("#reports")
        flow_page = page.source
        # Both nights' scorecards are listed, the latest first; the latest night's notice too.
        assert flow_page.index(f"quality_A_{LOGICAL_DATE}.html") < flow_page.index(f"quality_A_{EARLIER}.html")
        assert f"rectification_A_{LOGICAL_DATE}.html" in flow_page

        page.click("#latest-quality")
        page.until(lambda: "Records checked" in page.source, "the scorecard did not open")
        scorecard = page.source
        assert _cell(scorecard, "Logical date") == LOGICAL_DATE.isoformat() == site.report["logical_date"]
        assert int(_cell(scorecard, "Records checked").split()[0]) == site.report["rows"]
        held = site.report["held_back_rows"]
        assert held >= 1 and int(_cell(scorecard, "Records held back")) == held

        page.get(f"{site.server.url}{FLOW}")
        page.click(f'a[href$="file=rectification_A_{LOGICAL_DATE}.html"]')
        page.until(lambda: "Rectification notice" in page.source, "the rectification notice did not open")
        assert int(_cell(page.source, "Records held back")) == held

        page.get(f"{site.server.url}/transfers/")
        page.click("form[action='/transfers/ig'] button[type=submit]")
        page.until(lambda: "total-disclosures" in page.source, "the IG report did not open")
        ig = page.source
        assert _number(ig, "total-disclosures") == len(disclosures)
        assert _number(ig, "total-rows") == sum(e.payload["rows"] for e in disclosures)

        assert page.outside() == [], page.outside()


def test_a_request_without_an_airflow_login_is_refused(site):
    for path in (
        "/transfers/",
        FLOW,
        f"{FLOW}/quality",
        "/transfers/ig",
        "/transfers/agreements/mash-referrals",
        "/transfers/subjects",
    ):
        status, body = site.server.get(path)
        assert status == 401, path
        assert "Records checked" not in body and "total-disclosures" not in body
        # A link to Airflow's own login page, coming back here once signed in.
        login = re.search(r'id="login" href="([^"]+)"', body)
        assert login and html.unescape(login.group(1)) == f"/auth/login?{urlencode({'next': site.server.url + path})}"
        status, _ = site.server.get(path, token="not-a-token")
        assert status in (401, 403), path
    status, _ = site.server.get("/transfers/subjects", data=b"identifier=9990001236")
    assert status == 401


def test_report_names_from_the_query_string_never_leave_the_flows_reports_folder(site):
    token = site.server.token(OWNER)
    reports = site.world.settings.layout.reports_dir("mash-referrals", "A")
    scorecard = reports / f"quality_A_{LOGICAL_DATE}.html"
    status, body = site.server.get(f"{FLOW}/report?file={quote(scorecard.name)}", token=token)
    assert status == 200 and "Records checked" in body  # a name the flow's page lists opens
    home = site.world.settings.home
    (reports / "leak.html").symlink_to(home / "ledger.db")
    other = site.world.settings.layout.reports_dir("mash-referrals", "B")
    other.mkdir(parents=True, exist_ok=True)
    (other / "quality_B_2026-01-01.html").write_text("flow B's scorecard")
    for name in (
        "../../../ledger.db",
        str(home / "ledger.db"),
        "/etc/passwd",
        "..%2F..%2F..%2Fledger.db",
        "../B/quality_B_2026-01-01.html",
        "leak.html",
        f"./{scorecard.name}",
        f"dry-run/../{scorecard.name}",
        f"{scorecard.name}\x00.html",
        "",
    ):
        status, body = site.server.get(f"{FLOW}/report?{urlencode({'file': name})}", token=token)
        assert status == 404, name
        assert "SQLite" not in body and "root:" not in body and "flow B's" not in body
    status, _ = site.server.get("/transfers/flows/mash-referrals/..%2F..%2Fetc/report?file=passwd", token=token)
    assert status == 404


def test_the_subject_look_up_is_for_the_ig_role_only(site):
    form = urlencode({"identifier": site.subject}).encode()

    status, body = site.server.get("/transfers/subjects", token=site.server.token(OWNER), data=form)
    assert status == 403 and "ig_users" in body and "trail" not in body

    status, body = site.server.get("/transfers/subjects", token=site.server.token(IG), data=form)
    assert status == 200
    disclosed = re.findall(r'<tr class="event disclosed">(.*?)</tr>', body, re.S)
    # Sent once, on the latest night (the earlier night's referrals were other children).
    [disclosure] = [
        e for e in site.world.settings.open_ledger().entries(kind="disclosure") if e.logical_date == LOGICAL_DATE
    ]
    assert len(disclosed) == 1 and "mash-referrals.A" in disclosed[0] and LOGICAL_DATE.isoformat() in disclosed[0]
    assert f"<td>{disclosure.seq}</td>" in disclosed[0] and f"<td>{disclosure.recipient}</td>" in disclosed[0]
    assert site.subject not in body
    status, body = site.server.get(
        "/transfers/subjects", token=site.server.token(IG), data=urlencode({"identifier": "999 000 0018"}).encode()
    )
    assert status == 200 and 'id="nothing"' in body


def test_each_flow_dag_page_links_to_its_pages_and_the_agreement_renders(site):
    token = site.server.token(OWNER)
    status, body = site.server.get("/api/v2/plugins", token=token)
    assert status == 200
    [plugin] = [p for p in json.loads(body)["plugins"] if p["name"] == "isp_transfers"]
    [dag_view] = [v for v in plugin["external_views"] if v["destination"] == "dag"]
    assert dag_view["href"] == "/transfers/dags/{DAG_ID}"
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/transfers"]

    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(
        f"{site.server.url}/transfers/dags/mash-referrals.A", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        opener.open(request, timeout=30)
        raise AssertionError("no redirect")
    except urllib.error.HTTPError as exc:
        assert exc.code == 303 and exc.headers["Location"] == FLOW

    status, body = site.server.get("/transfers/agreements/mash-referrals", token=token)
    assert status == 200 and site.world.config.agreement("mash-referrals").agreement.name in body
    status, body = site.server.get(FLOW, token=token)
    # The flow's page: receipts (none returned yet: pending) from the run's ledger.
    assert status == 200 and body.count(">pending<") == 2  # one delivery a night, no receipt returned yet
    status, body = site.server.get(
        f"/transfers/ig?{urlencode({'from': '2026-02-01', 'to': '2026-01-01'})}", token=site.server.token(IG)
    )
    assert status == 400


def test_the_ig_role_is_a_listed_user_or_a_listed_role_of_the_auth_manager(monkeypatch):
    from types import SimpleNamespace

    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from transfers_airflow.ui.auth import is_ig

    iggy, admin = SimpleAuthManagerUser(username=IG, role="viewer"), SimpleAuthManagerUser(username="ada", role="admin")
    fab_user = SimpleNamespace(get_name=lambda: "fay", roles=[SimpleNamespace(name="IG Officer")])
    monkeypatch.delenv("AIRFLOW__TRANSFERS__IG_USERS", raising=False)
    monkeypatch.delenv("AIRFLOW__TRANSFERS__IG_ROLES", raising=False)
    assert not any(is_ig(u) for u in (iggy, admin, fab_user))  # nothing configured: nobody (fails closed)

    monkeypatch.setenv("AIRFLOW__TRANSFERS__IG_USERS", f"someone, {IG}")
    assert is_ig(iggy) and not is_ig(admin) and not is_ig(fab_user)

    monkeypatch.setenv("AIRFLOW__TRANSFERS__IG_ROLES", "ig officer,Admin")
    assert is_ig(admin) and is_ig(fab_user)  # SimpleAuthManager's role, FAB's role names, in any case


def test_every_airflow_process_loads_the_plugin_but_only_a_request_builds_the_pages():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from airflow import plugins_manager\n"
        "plugins_manager.ensure_plugins_loaded()\n"
        "[p] = [p for p in plugins_manager._get_plugins()[0] if p.name == 'isp_transfers']\n"
        "print(p.fastapi_apps[0]['url_prefix'], 'transfers_airflow.ui.app' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Found through its entry point (no plugins folder), and the task runners that load it import no FastAPI app.
    assert done.stdout.split() == ["/transfers", "False"]
