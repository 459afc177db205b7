"""End to end: ``transfers run`` against the bare-tools floor, on the same rows, key and server (issue 14).

    uv run python bench/bench_e2e.py ROWS [--pairs 3] [--keep] [--profile]

Sets everything up itself, in a temporary directory:

* the source: a table ``referrals`` shaped like the sample flow ``mash-referrals.A``'s, made by
  ``generate_series`` inside PostgreSQL (``test`` on 127.0.0.1:5432, trust auth), in a schema owned by a
  throwaway role of the same name, so the flow's unchanged query (``FROM referrals``) finds it through the
  default ``search_path``; both are dropped at the end. Every row is a distinct subject: distinct NHS
  numbers with valid Modulus 11 check digits (the 999 test range first, counting down from 999 999 999x,
  then on into 998..., synthetic), distinct record keys;
* the parties of the sample agreement with their keys made by ``gpg`` (``transfers.devkit.parties``, as the
  demo makes them), a private OpenSSH ``sshd`` on 127.0.0.1 (``tests.support.sshd``) whose host key the
  sender pins.

Then it runs, alternately (the order flips each pair), ``--pairs`` pairs of:

* project: ``transfers run mash-referrals.A --date D`` as a subprocess, with a fresh ``TRANSFERS_HOME``
  each time (so each run is a real first delivery, and its ledger and subject register are part of the
  cost); the delivered files are removed from the server after each run;
* floor: ``psql -c "\\copy (<the flow's query, same date>) to stdout csv header" | gpg --batch
  --trust-model always --encrypt -r <recipient> --sign -u <sender's signing key> --output <temp file>``
  (gpg's defaults: compression on), then ``sftp -b <batch> put <temp file>`` to the same server with the
  host key pinned. OpenSSH's ``sftp`` refuses to ``put`` a pipe ("not a regular file") and the server runs
  SFTP only (no ``ssh ... 'cat > file'``), so the floor goes through one encrypted temp file.

Each process is reaped with ``os.wait4``: CPU is user+sys of every process the bench starts (and of the
children they reap, such as ``sftp``'s ``ssh``); neither side's PostgreSQL backend, ``sshd`` or ``gpg-agent``
is counted. Peak memory is the project process's max RSS (with a process pool, the largest single
process, not their sum) and, for the floor, the largest single process's max RSS. The figures are only as
quiet as the machine: compare a change's before and after in one sitting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``tests.support.sshd``: run as a script, only bench/ is on the path
    sys.path.insert(0, str(ROOT))

import e2e_airflow  # noqa: E402

from tests.support.sshd import SshServer, run_sshd  # noqa: E402
from transfers.devkit import synthetic  # noqa: E402
from transfers.devkit.gpg import GpgHome  # noqa: E402
from transfers.devkit.parties import Party, make_parties  # noqa: E402
from transfers.devkit.signoff import sign_for_partners  # noqa: E402
from transfers.sources import strip_sql_comments  # noqa: E402

FLOW = "mash-referrals.A"
SENDER = "rotherham-childrens-services"
PG = {"host": "127.0.0.1", "port": 5432, "database": "test"}


@dataclass
class Run:
    """One measured run: seconds of wall and CPU, the largest max RSS (MB), what it left."""

    wall: float
    cpu: float
    peak_mb: float
    delivered_bytes: int = 0
    ledger_bytes: int = 0
    subject_bytes: int = 0
    free_bytes: int = 0
    written_bytes: int = 0  # to the filesystem (ru_oublock): staging, outbox, ledger; not the socket
    waits: int = 0  # voluntary context switches: disk, network, locks, sleeps
    first_task: float = 0.0  # through Airflow: seconds from the start to its first task's start (its log)


def say(message: str) -> None:
    print(f"-- {message}", flush=True)


def adopt_children() -> None:
    """Make this process a child subreaper: what ``start`` launches becomes its child when the launcher exits."""
    import ctypes

    pr_set_child_subreaper = 36
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def start(command: list[str], pidfile: Path, **popen: object) -> int:
    """Start ``command`` through ``sh`` and return its pid; it is this (subreaper) process's child once sh exits.

    Linux keeps a process's peak RSS across ``exec``, so a command forked straight from this Python
    process (a few hundred MB) would report this process's size as its own peak. Forked from ``sh``, it
    starts from sh's megabyte. sh gives a background command /dev/null as stdin before its own
    redirections, so the real stdin goes round by fd 3.
    """
    launcher = subprocess.Popen(["sh", "-c", 'exec 3<&0; "$@" <&3 3<&- & echo $! > "$0"', str(pidfile), *command],
                                **popen)  # type: ignore[call-overload]
    if launcher.wait() != 0:
        raise SystemExit(f"could not start {command[0]}")
    return int(pidfile.read_text())


def reap(pid: int) -> tuple[int, resource.struct_rusage]:
    """Wait for one process with ``wait4``, so its own ``ru_maxrss`` (and CPU) is read."""
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), usage


def cpu_of(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- source


def make_source(rows: int, day: str, name: str, width: int = 0) -> int:
    """Create role and schema ``name`` with ``name.referrals``: ``rows`` distinct subjects; returns the key width
    (``width`` digits if given: a second, smaller source matches the first's signed record-key pattern)."""
    width = width or max(6, len(str(rows - 1)))
    span = rows * 12 // 10 + 1000  # 10 in 11 nine-digit stems have a valid check digit
    weights = " + ".join(f"(b / {10 ** (8 - i)}) % 10 * {10 - i}" for i in range(9))
    lists = {k: "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]" for k, values in {
        "forename": synthetic.FORENAMES, "surname": synthetic.SURNAMES, "district": synthetic.DISTRICTS,
        "risk": synthetic.RISK, "category": synthetic.CATEGORY}.items()}
    letters = "'ABDEFGHJLNPQRSTUWXYZ'"
    # The check digit is 11 - (weighted sum mod 11); 11 means 0, 10 means no valid number: skipped.
    sql = f"""
        CREATE TABLE {name}.referrals AS
        SELECT 'R' || lpad((row_number() OVER () - 1)::text, {width}, '0') AS referral_id,
               b::text || c::text AS nhs_number,
               ({lists['forename']})[1 + b % {len(synthetic.FORENAMES)}] AS forename,
               ({lists['surname']})[1 + b / 12 % {len(synthetic.SURNAMES)}] AS surname,
               DATE '{day}' - (365 + (b * 7919) % (16 * 365))::int AS date_of_birth,
               ({lists['district']})[1 + b / 7 % {len(synthetic.DISTRICTS)}] || ' ' || (1 + b % 9)::text
                 || substr({letters}, (1 + b / 3 % 20)::int, 1) || substr({letters}, (1 + b / 11 % 20)::int, 1)
                 AS postcode,
               DATE '{day}' AS referral_date,
               ({lists['risk']})[1 + b / 5 % 3] AS risk_level,
               ({lists['category']})[1 + b / 13 % 5] AS category
        FROM (SELECT b, c FROM (SELECT b, (11 - ({weights}) % 11) % 11 AS c
                                FROM generate_series(999999999::bigint, {999999999 - span}, -1) AS b) AS stems
              WHERE c <> 10 LIMIT {rows}) AS subjects
    """  # noqa: S608 - every name and value here is made by the bench, none comes from input
    with _admin() as cur:
        cur.execute(f"CREATE ROLE {name} LOGIN")
        cur.execute(f"CREATE SCHEMA {name} AUTHORIZATION {name}")
        cur.execute(sql)
        cur.execute(f"ALTER TABLE {name}.referrals OWNER TO {name}")
        cur.execute(f"ANALYZE {name}.referrals")
        cur.execute(f"SET search_path TO {name}")
        cur.execute("SELECT count(*), count(DISTINCT nhs_number), count(DISTINCT referral_id) FROM referrals")
        counts = cur.fetchone()
    if counts != (rows, rows, rows):
        raise SystemExit(f"source {name}.referrals: expected {rows} distinct subjects and keys, got {counts}")
    return width


def drop_source(name: str) -> None:
    with _admin() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        cur.execute(f"DROP ROLE IF EXISTS {name}")


@contextmanager
def _admin() -> Iterator:  # a psycopg2 cursor as the superuser, each statement committed (roles, schemas)
    import psycopg2

    conn = psycopg2.connect(user="postgres", **PG)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


# --------------------------------------------------------------------------- parties and config


def widen_record_keys(config_dir: Path, width: int, party_env: list[dict[str, str]]) -> None:
    """Past a million rows ``R`` + 6 digits cannot be unique: the bench's copy takes ``width`` digits, signed again."""
    import yaml

    path = config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    flow = next(f for f in data["flows"] if f["id"] == FLOW.split(".")[1])
    flow["fields"]["referral_id"]["checks"]["pattern"] = f"^R[0-9]{{{width}}}$"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    sign_for_partners(config_dir, *(env["AIRFLOW_VAR_TRANSFERS_SIGNING_KEY"] for env in party_env))


def project_env(sender: Party, sshd: SshServer, role: str) -> dict[str, str]:
    """What the sender's ``transfers run`` reads: its party settings, the source, the recipient's SFTP, secrets."""
    env = {**os.environ, **sender.env, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env["AIRFLOW_CONN_CS_CASE_DB"] = json.dumps({"conn_type": "postgres", "host": PG["host"], "port": PG["port"],
                                                 "login": role, "schema": PG["database"]})
    env["AIRFLOW_CONN_SYP_SFTP"] = json.dumps({
        "conn_type": "sftp", "host": sshd.host, "port": sshd.port, "login": sshd.username,
        "extra": {"host_key": sshd.host_key_line, "private_key": sshd.client_private_key}})
    env["AIRFLOW_VAR_MASH_PSEUDONYM_KEY"] = os.urandom(32).hex()
    sender.airflow_home.mkdir(parents=True, exist_ok=True)
    return env


def transfers_command() -> list[str]:
    installed = Path(sys.executable).with_name("transfers")
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "transfers_airflow.cli"]


# --------------------------------------------------------------------------- runs


def database_sizes(home: Path) -> tuple[int, int, int]:
    """Bytes of every SQLite database in ``home``: in all, in the subject register's tables and indexes, in
    free pages (rows written and deleted again leave them; the file does not shrink)."""
    total = subjects = free = 0
    for db in sorted(home.glob("*.db")):
        total += sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            owners = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master"))
            free += conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
            for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                if owners.get(name, name).startswith("subject"):
                    subjects += size
        conn.close()
    return total, subjects, free


def run_project(command: list[str], env: dict[str, str], home: Path, sshd: SshServer, log: Path, *,
                keep: bool, argv: list[str] | None = None, around: AbstractContextManager[object] | None = None) -> Run:
    """``transfers run`` (or ``argv``: ``airflow dags test``), measured; ``around`` is open while it runs."""
    env = {**env, "TRANSFERS_HOME": str(home)}
    argv = argv or [*command, "run", FLOW, "--date", env["BENCH_DAY"]]
    with log.open("wb") as out, around or nullcontext():
        started = time.perf_counter()
        pid = start(argv, log.with_suffix(".pid"), env=env, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT)
        code, usage = reap(pid)
        wall = time.perf_counter() - started
    if code != 0:
        what = "transfers run" if argv[:len(command)] == command else f"{Path(argv[0]).name} {' '.join(argv[1:3])}"
        raise SystemExit(f"{what} exited {code}: see {log}\n" + log.read_text(errors="replace")[-3000:])
    remote = sshd.root / "inbound"
    delivered = sum(p.stat().st_size for p in remote.rglob("*.pgp"))
    shutil.rmtree(remote)  # the next run is a first delivery too
    ledger, subjects, free = database_sizes(home)
    if not keep:
        shutil.rmtree(home)
    return Run(wall, cpu_of(usage), usage.ru_maxrss / 1024, delivered, ledger, subjects, free,
               usage.ru_oublock * 512, usage.ru_nvcsw)


@dataclass
class Floor:
    psql: list[str]
    gpg: list[str]
    sftp: list[str]
    batch: Path
    encrypted: Path
    remote: Path


def make_floor(work: Path, sshd: SshServer, gpg: GpgHome, recipient: str, signer: str, role: str, query: str,
               day: str) -> Floor:
    flat = " ".join(strip_sql_comments(query).replace(":ds", f"'{day}'").split())  # \copy takes one line
    known_hosts = work / "floor_known_hosts"
    known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {sshd.host_key_line}\n")
    encrypted = work / "floor.csv.gpg"
    batch = work / "floor.sftp"
    batch.write_text(f"-mkdir floor\nput {encrypted} floor/{FLOW}_{day}.csv.gpg\n")
    return Floor(
        psql=["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG["host"], "-p", str(PG["port"]), "-U", role,
              "-d", PG["database"], "-c", f"\\copy ({flat}) to stdout csv header"],
        gpg=["gpg", "--homedir", str(gpg.path), "--batch", "--yes", "--quiet", "--trust-model", "always",
             "--encrypt", "-r", recipient, "--sign", "-u", signer, "--output", str(encrypted)],
        sftp=["sftp", "-q", "-b", str(batch), "-i", str(sshd.workdir / "client_ed25519"), "-P", str(sshd.port),
              "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
              "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", f"{sshd.username}@{sshd.host}"],
        batch=batch, encrypted=encrypted, remote=sshd.root / "floor")


def run_floor(floor: Floor) -> Run:
    pidfile = floor.encrypted.with_name("floor.pid")
    started = time.perf_counter()
    read, write = os.pipe()
    psql = start(floor.psql, pidfile, stdin=subprocess.DEVNULL, stdout=write)
    os.close(write)  # psql holds it now: gpg sees end of file when psql ends
    gpg = start(floor.gpg, pidfile, stdin=read)
    os.close(read)
    results = [reap(psql), reap(gpg)]
    if results[0][0] == 0 and results[1][0] == 0:
        results.append(reap(start(floor.sftp, pidfile, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)))
    wall = time.perf_counter() - started
    if any(code != 0 for code, _ in results):
        raise SystemExit(f"floor failed: exit codes psql, gpg, sftp = {[code for code, _ in results]}")
    delivered = sum(p.stat().st_size for p in floor.remote.iterdir())
    shutil.rmtree(floor.remote)
    floor.encrypted.unlink()
    return Run(wall, sum(cpu_of(u) for _, u in results), max(u.ru_maxrss for _, u in results) / 1024, delivered,
               written_bytes=sum(u.ru_oublock for _, u in results) * 512, waits=sum(u.ru_nvcsw for _, u in results))


# --------------------------------------------------------------------------- report


def report(pairs: list[tuple[Run, Run]], rows: int) -> None:
    print()
    print(f"{'':<8}{'project wall':>13}{'CPU':>9}{'peak MB':>9}   {'floor wall':>11}{'CPU':>8}{'peak MB':>9}")
    for i, (p, f) in enumerate(pairs, 1):
        print(f"pair {i:<3}{p.wall:>12.2f}s{p.cpu:>8.2f}s{p.peak_mb:>9.0f}   {f.wall:>10.2f}s{f.cpu:>7.2f}s"
              f"{f.peak_mb:>9.0f}")
    pw, pc, pm = (statistics.median(getattr(p, k) for p, _ in pairs) for k in ("wall", "cpu", "peak_mb"))
    fw, fc, fm = (statistics.median(getattr(f, k) for _, f in pairs) for k in ("wall", "cpu", "peak_mb"))
    print(f"{'median':<8}{pw:>12.2f}s{pc:>8.2f}s{pm:>9.0f}   {fw:>10.2f}s{fc:>7.2f}s{fm:>9.0f}")
    print(f"ratio project/floor: wall {pw / fw:.1f}x, CPU {pc / fc:.1f}x, peak memory {pm:.0f} MB vs {fm:.0f} MB "
          f"({pm / fm:.1f}x)")
    print(f"project CPU/wall: {pc / pw:.2f} (1.00 is one core busy, 2.00 both)")
    ledger = statistics.median(p.ledger_bytes for p, _ in pairs)
    subjects = statistics.median(p.subject_bytes for p, _ in pairs)
    free = statistics.median(p.free_bytes for p, _ in pairs)
    print(f"ledger database growth per run: {ledger / 1e6:.1f} MB ({ledger / rows:.0f} bytes per subject, "
          f"{free / 1e6:.1f} MB of it free pages); "
          f"subject register (subject_* tables and indexes, dbstat): {subjects / 1e6:.1f} MB, "
          f"{subjects / rows:.0f} bytes per subject per disclosure")
    delivered_p = statistics.median(p.delivered_bytes for p, _ in pairs)
    delivered_f = statistics.median(f.delivered_bytes for _, f in pairs)
    print(f"delivered: project {delivered_p / 1e6:.2f} MB (pseudonymised, generalised), floor {delivered_f / 1e6:.2f} "
          f"MB (the query's columns as they are)")


class AirflowBench:
    """``--airflow``: the flow's send DAG through ``airflow dags test``, and both sides on a tiny source of its own."""

    def __init__(self, args: argparse.Namespace, day: str, role: str, width: int, env: dict[str, str], work: Path,
                 sshd: SshServer, recipient: Party) -> None:
        self.args, self.day, self.work, self.sshd = args, day, work, sshd
        self.tiny_role = f"{role}_tiny"
        self.width = width
        self.env = env
        self.signing_key = recipient.env["AIRFLOW_VAR_TRANSFERS_SIGNING_KEY"]

    def __enter__(self) -> AirflowBench:
        started = time.perf_counter()
        try:
            make_source(e2e_airflow.TINY_ROWS, self.day, self.tiny_role, self.width)
        except BaseException:
            self.__exit__()
            raise
        tiny_conn = json.loads(self.env["AIRFLOW_CONN_CS_CASE_DB"]) | {"login": self.tiny_role}
        self.tiny_env = {**self.env, "AIRFLOW_CONN_CS_CASE_DB": json.dumps(tiny_conn)}
        self.airflow_env = e2e_airflow.airflow_env(self.env, self.work)
        self.airflow_tiny_env = {**self.airflow_env, "AIRFLOW_CONN_CS_CASE_DB": json.dumps(tiny_conn)}
        say(f"Airflow: metadata database migrated once, copied for each run; {e2e_airflow.TINY_ROWS}-row source "
            f"{self.tiny_role}.referrals for its fixed start-up ({time.perf_counter() - started:.1f} s)")
        return self

    def __exit__(self, *_: object) -> None:
        if not self.args.keep:
            drop_source(self.tiny_role)

    def run(self, command: list[str], i: int, *, tiny: bool) -> Run:
        name = f"airflow{'-tiny' if tiny else ''}-{i}"
        env = e2e_airflow.fresh_airflow_home(self.airflow_tiny_env if tiny else self.airflow_env,
                                             self.work / name / "airflow")
        started = time.time()
        done = run_project(command, env, self.work / name / "state", self.sshd, self.work / f"{name}.log",
                           keep=self.args.keep, argv=e2e_airflow.dags_test_argv(FLOW, self.day),
                           around=e2e_airflow.recipient_standin(self.sshd.root / "inbound", self.signing_key))
        if not done.delivered_bytes:  # a DAG whose tasks were all skipped also exits 0
            raise SystemExit(f"airflow dags test {FLOW} delivered nothing: see {self.work / f'{name}.log'}")
        done.first_task = e2e_airflow.first_task_at(self.work / f"{name}.log") - started
        return done

    def tiny_pair(self, command: list[str], i: int) -> tuple[Run, Run]:
        """The CLI and Airflow on the tiny source, in turn (the order flips each pair): (CLI, Airflow)."""
        done: dict[str, Run] = {}
        for side in ("cli", "airflow") if i % 2 else ("airflow", "cli"):
            if side == "cli":
                done[side] = run_project(command, self.tiny_env, self.work / f"cli-tiny-{i}" / "state", self.sshd,
                                         self.work / f"cli-tiny-{i}.log", keep=self.args.keep)
            else:
                done[side] = self.run(command, i, tiny=True)
            print(f"   {side + ' tiny':<12} {done[side].wall:8.2f} s wall {done[side].cpu:8.2f} s CPU "
                  f"{done[side].peak_mb:6.0f} MB peak", flush=True)
        print(f"   airflow: first task {done['airflow'].first_task:.2f} s after its start on the tiny source", flush=True)
        return done["cli"], done["airflow"]


def profile(command: list[str], env: dict[str, str], home: Path, work: Path) -> None:
    """One more project run under cProfile (this process only: a pool's workers are not in it), top 25."""
    import pstats

    out = work / "project.prof"
    say("profiling one project run (cProfile; its first process only)")
    env = {**env, "TRANSFERS_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), *command, "run", FLOW, "--date",
                           env["BENCH_DAY"]], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"profiled run exited {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    stats = pstats.Stats(str(out), stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(25)
    print("-- the same, the project's own functions only (the 25 above are mostly the CLI's call chain)")
    stats.print_stats(r"/transfers/", 25)
    print("-- where the time is spent inside each function itself (tottime)")
    stats.sort_stats("tottime").print_stats(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("rows", type=int)
    parser.add_argument("--pairs", type=int, default=3, help="0 with --profile: only the profiled run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and the source table")
    parser.add_argument("--profile", action="store_true", help="then one project run under cProfile: top 25")
    parser.add_argument("--airflow", action="store_true",
                        help="also the same flow through `airflow dags test`, and on a tiny source (bench/e2e_airflow.py)")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("psql", "gpg", "sftp", "ssh-keygen") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"bench_e2e needs {', '.join(missing)} on PATH")
    today = datetime.now(UTC).date()
    day = (today - timedelta(days=1)).isoformat()
    role = f"bench_e2e_{uuid.uuid4().hex[:10]}"
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    adopt_children()
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        say(f"{FLOW}, {args.rows:,} rows, each a distinct subject; logical date {day}; work dir {work}")
        started = time.perf_counter()
        try:
            width = make_source(args.rows, day, role)
        finally:
            if not args.keep:
                stack.callback(drop_source, role)
        say(f"{args.rows:,} rows generated in PostgreSQL in {time.perf_counter() - started:.1f} s "
            f"(table {role}.referrals in database {PG['database']})")
        gpg = GpgHome(work / "gnupg")
        stack.callback(gpg.close)
        parties, config_dir = make_parties(work / "parties", gpg, today)
        if width > 6:
            widen_record_keys(config_dir, width, [p.env for p in parties.values()])
            say(f"record keys have {width} digits: the bench's copy of the agreement allows them (signed again)")
        sshd = stack.enter_context(run_sshd(work / "sshd"))
        sender = parties[SENDER]
        env = {**project_env(sender, sshd, role), "BENCH_DAY": day}
        recipient = next(p for p in parties.values() if FLOW in p.receives)
        assert recipient.decryption_fingerprint is not None
        floor = make_floor(work, sshd, gpg, recipient.decryption_fingerprint, sender.signing_fingerprint, role,
                           (config_dir / "sql" / "mash_referrals.sql").read_text(), day)
        say(f"sshd on {sshd.host}:{sshd.port}; recipient key {recipient.decryption_fingerprint}")
        command = transfers_command()
        if args.airflow:
            airflow = stack.enter_context(AirflowBench(args, day, role, width, env, work, sshd, recipient))
        pairs: list[tuple[Run, Run]] = []
        airflow_pairs: list[e2e_airflow.Sides] = []
        for i in range(1, args.pairs + 1):
            order = ("project", "floor") if i % 2 else ("floor", "project")
            if args.airflow:  # the Airflow run takes each place in turn: after, between, before
                order = (*order[:(i - 1) % 3], "airflow", *order[(i - 1) % 3:])[:3]
            say(f"pair {i} of {args.pairs} ({order[0]} first)")
            done: dict[str, Run] = {}
            for side in order:
                if side == "project":
                    done[side] = run_project(command, env, work / f"project-{i}" / "state", sshd,
                                             work / f"project-{i}.log", keep=args.keep)
                elif side == "airflow":
                    done[side] = airflow.run(command, i, tiny=False)
                else:
                    done[side] = run_floor(floor)
                r = done[side]
                print(f"   {side:<8} {r.wall:8.2f} s wall {r.cpu:8.2f} s CPU {r.peak_mb:6.0f} MB peak; "
                      f"{r.written_bytes / 1e6:.0f} MB written to disk, {r.waits:,} voluntary waits", flush=True)
                if side == "airflow":
                    print(f"   airflow: first task {r.first_task:.2f} s after its start", flush=True)
            pairs.append((done["project"], done["floor"]))
            if args.airflow:
                tiny = airflow.tiny_pair(command, i)
                airflow_pairs.append(e2e_airflow.Sides(done["project"], done["airflow"], *tiny))
        if pairs:
            report(pairs, args.rows)
        if airflow_pairs:
            e2e_airflow.report(airflow_pairs)
        if args.profile:
            profile(command, env, work / "profiled" / "state", work)
        if args.keep:
            print(f"kept: {work}; drop the source with: psql -h {PG['host']} -U postgres -d {PG['database']} "
                  f"-c 'DROP SCHEMA {role} CASCADE' -c 'DROP ROLE {role}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
