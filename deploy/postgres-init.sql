-- Run once by the postgres image, as its superuser, when its data volume is first made
-- (docker-compose.yml mounts it into /docker-entrypoint-initdb.d). Two roles, two databases:
-- Airflow's metadata belongs to `airflow`; the disclosure ledger, the project's evidence, to
-- `transfers_ledger`, which Airflow's role cannot open. Neither role is a superuser, so neither
-- can undo the ledger's append-only triggers through the other's database.
--
-- Each password is read from its own Docker secret file (psql's backquotes run `cat`), never
-- written here. The names and the secrets folder can be given as psql variables (-v ledger_db=...),
-- which the integration test uses to run this file against a scratch server; docker-compose.yml does not.
\set ON_ERROR_STOP on

\if :{?airflow_db}
\else
  \set airflow_db airflow
\endif
\if :{?airflow_role}
\else
  \set airflow_role airflow
\endif
\if :{?ledger_db}
\else
  \set ledger_db transfers_ledger
\endif
\if :{?ledger_role}
\else
  \set ledger_role transfers_ledger
\endif
\if :{?secrets_dir}
\else
  \set secrets_dir /run/secrets
\endif

\set airflow_password_file :secrets_dir/airflow_db_password
\set ledger_password_file :secrets_dir/transfers_ledger_password
\set airflow_password `cat :'airflow_password_file'`
\set ledger_password `cat :'ledger_password_file'`

CREATE ROLE :"airflow_role" LOGIN PASSWORD :'airflow_password';
CREATE DATABASE :"airflow_db" OWNER :"airflow_role";
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;

CREATE ROLE :"ledger_role" LOGIN PASSWORD :'ledger_password';
CREATE DATABASE :"ledger_db" OWNER :"ledger_role";
-- PUBLIC may connect to a new database by default; the ledger's is its owner's alone.
REVOKE ALL ON DATABASE :"ledger_db" FROM PUBLIC;
