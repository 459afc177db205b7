"""The parts of the COPY extract that need no database: which cast each type gets, and float text.

The comparison with the row-by-row path on a real PostgreSQL is tests/integration/test_pgcopy_postgres.py.
"""

from __future__ import annotations

import random
import struct
from decimal import Decimal

import pyarrow as pa
import pytest

from transfers.cells import _text
from transfers.errors import SourceError
from transfers.pgcopy import _fix_floats, plan


def _description(*columns: tuple[str, int]) -> list[tuple]:
    return [(name, oid, None, None, None, None, None) for name, oid in columns]


def test_each_type_gets_the_rendering_of_the_row_by_row_path():
    chosen = plan(_description(("id", 25), ("dob", 1082), ("at", 1114), ("tz", 1184), ("ok", 16), ("score", 701),
                               ('say "hi"', 1700)))

    assert chosen is not None
    assert chosen.columns == ["id", "dob", "at", "tz", "ok", "score", 'say "hi"']
    assert chosen.floats == ["score"]
    assert chosen.select == (
        'SELECT transfers_extract."id", transfers_extract."dob", '
        'replace(date_trunc(\'second\', transfers_extract."at")::text, \' \', \'T\') AS "at", '
        'to_char(transfers_extract."tz", \'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM\') AS "tz", '
        'CASE WHEN transfers_extract."ok" THEN \'True\' WHEN NOT transfers_extract."ok" THEN \'False\' END AS "ok", '
        'transfers_extract."score", transfers_extract."say ""hi"""'
    )


@pytest.mark.parametrize("columns", [(("j", 114),), (("gap", 1186),), (("tags", 1009),), (("a", 25), ("a", 23))],
                         ids=["json", "interval", "text[]", "a name twice"])
def test_a_type_copy_cannot_render_the_same_keeps_the_row_by_row_path(columns):
    assert plan(_description(*columns)) is None


def test_a_binary_column_is_refused_naming_it():
    with pytest.raises(SourceError, match=r"binary column \('photo'\); select text columns only"):
        plan(_description(("id", 25), ("photo", 17)))


def _as_postgres_prints(value: float, digits: int | None) -> str:
    """float8 text as PostgreSQL writes it: shortest round trip (``digits`` None, PostgreSQL 12+), or
    C's ``%.{digits}g`` (older servers, or extra_float_digits below 1)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if digits is not None:
        return f"{value:.{digits}g}"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    shortest = Decimal(repr(value)).normalize()
    count, exponent = len(shortest.as_tuple().digits), shortest.adjusted()
    if exponent < -4 or exponent >= 15:  # float8out's switch to an exponent (Python's repr waits until 16)
        return f"{value:.{count - 1}e}"
    return f"{value:.{max(0, count - 1 - exponent)}f}"


def test_float_text_from_postgres_comes_out_as_the_row_by_row_path_wrote_it():
    rng = random.Random(14)
    values = [12.0, 0.1, 1e20, 1e-5, -0.0, 0.0, float("nan"), float("inf"), float("-inf"), 1234567890123456.5,
              2.0**60, 0.30000000000000004, 123456789012345.0, 1e15, 9.999999999999999e14, -1.5e-7]
    values += [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(3000)]
    values += [rng.uniform(-1e6, 1e6) for _ in range(3000)] + [float(rng.randint(-10**17, 10**17)) for _ in range(500)]
    texts = [_as_postgres_prints(v, digits) for v in values for digits in (None, 15, 17, 6)]
    column = pa.table({"f": pa.array(texts + [None], pa.string())})

    got = _fix_floats(column, ["f"]).column("f").to_pylist()

    assert got == [_text(float(t)) for t in texts] + [None]
