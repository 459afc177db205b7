"""The append-only triggers, per dialect: the table refuses UPDATE and DELETE (and TRUNCATE).

They stop a mistaken script rewriting history at the database level. A database
owner can drop or disable them, so they are installed when the table is created
and never quietly reinstalled on open: ``missing`` lets ``verify`` report a
removed or disabled trigger instead of hiding it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from transfers.ledger.store import Store


def names(store: Store) -> list[str]:
    if store.dialect == "sqlite":
        return [f"{store.name}_no_update", f"{store.name}_no_delete"]
    return [f"{store.name}_no_update_delete", f"{store.name}_no_truncate"]


def install(store: Store, conn: Connection) -> None:
    """(Re)install the triggers in ``conn``'s transaction. Idempotent."""
    t, wanted = store.qualified, names(store)

    def run(sql: str) -> None:
        # text(), not exec_driver_sql(): psycopg2 would read RAISE's '%' as parameters.
        conn.execute(sa.text(sql))

    if store.dialect == "sqlite":
        for name, op in zip(wanted, ("UPDATE", "DELETE"), strict=True):
            run(f'CREATE TRIGGER IF NOT EXISTS "{name}" BEFORE {op} ON {t} '
                f"BEGIN SELECT RAISE(ABORT, 'ledger {store.name} is append-only: {op} refused'); END")
        return
    func = f'"{store.schema}"."{store.name}_append_only"' if store.schema else f'"{store.name}_append_only"'
    run(f"CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"RAISE EXCEPTION 'ledger %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP "
        f"USING ERRCODE = 'restrict_violation'; END $$")
    run(f'CREATE OR REPLACE TRIGGER "{wanted[0]}" BEFORE UPDATE OR DELETE ON {t} '
        f"FOR EACH ROW EXECUTE FUNCTION {func}()")
    run(f'CREATE OR REPLACE TRIGGER "{wanted[1]}" BEFORE TRUNCATE ON {t} '
        f"FOR EACH STATEMENT EXECUTE FUNCTION {func}()")
    # CREATE OR REPLACE keeps a trigger's disabled state; make sure they fire.
    for name in wanted:
        run(f'ALTER TABLE {t} ENABLE TRIGGER "{name}"')


def missing(store: Store) -> list[str]:
    """The triggers that are absent or disabled."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            rows = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                                {"t": store.name})
        else:
            rows = conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:t) "
                                        "AND NOT tgisinternal AND tgenabled <> 'D'"), {"t": store.qualified})
        present = {r[0] for r in rows}
    return [n for n in names(store) if n not in present]
