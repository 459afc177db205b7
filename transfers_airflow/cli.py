"""The ``transfers`` console command: the CLI in ``transfers.cli`` with Airflow's lookups installed."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _quiet(lookup: Callable[[str], T]) -> Callable[[str], T]:
    def call(name: str) -> T:
        import airflow  # noqa: F401 - Airflow configures its logging on import; the level below must come after

        # The user asked for one id, and the lookup's own error says what is missing; Airflow's
        # log lines (a metastore not migrated on this machine, no Fernet key) are noise here.
        logging.getLogger("airflow").setLevel(logging.CRITICAL)
        return lookup(name)

    return call


def main() -> None:  # pragma: no cover - the installed command; tests run it as a subprocess
    from transfers.cli import app
    from transfers.connections import install_cli_lookups
    from transfers.logs import log_to_stderr
    from transfers_airflow.resolvers import connection, secret

    log_to_stderr()
    install_cli_lookups(_quiet(connection), _quiet(secret))
    sys.exit(app())


if __name__ == "__main__":
    main()
