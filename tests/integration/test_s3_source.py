"""A flow whose source is an object in an S3 bucket: the object named for the logical date, at one version.

Real parts: moto's S3 server (``tests/support/s3.py``: an S3 HTTP endpoint on
127.0.0.1, standing in for S3, which cannot run here) with a versioned bucket, the
world's sshd and PostgreSQL, and ``gpg`` decrypting what was delivered. Flow B of the
sample agreement reads its ED attendances from the bucket instead of the trust's
export directory.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pandas as pd
import pytest

from tests.integration.conftest import LOGICAL_DATE, files_containing, read_delivery
from tests.integration.privacy_world import edit_agreement, flow_of
from tests.support.s3 import moto_s3, s3_bucket
from transfers.devkit import synthetic
from transfers.errors import SourceError, SourceUnavailable, TerminalError
from transfers.ledger.records import Extracted
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

FLOW = "mash-referrals.B"
CSV_KEY = "ed/{ds}/attendances.csv"
PARQUET_KEY = "ed/{ds_nodash}/attendances.parquet"


@pytest.fixture
def bucket(world):
    """``(client, bucket)``: flow B reads from this versioned bucket through the ``rft_s3`` connection."""
    with moto_s3("rft_s3") as conn, s3_bucket(conn, "rft-exports") as (client, name):
        world.connections["rft_s3"] = conn
        yield client, name


def read_from(world, bucket_name: str, key: str, **extra) -> None:
    def change(data: dict) -> None:
        flow_of(data, "B")["source"] = {
            "kind": "s3",
            "connection": "rft_s3",
            "bucket": bucket_name,
            "key": key,
            **extra,
        }

    edit_agreement(world, change)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def earlier_version(frame: pd.DataFrame) -> pd.DataFrame:
    """An earlier export of the same day: fewer rows, ids of its own, so a delivery shows which version it read."""
    old = frame.head(12).copy()
    old["attendance_id"] = [f"OLD{i:05d}" for i in range(len(old))]
    return old


def delivered_ids(world, gpg_partner) -> set[str]:
    files = world.delivered("inbound/ed-attendances")
    assert len(files) == 1, files
    return set(read_delivery(gpg_partner, files[0])["attendance_id"])


def extracts(world) -> list[Extracted]:
    with world.settings.open_ledger() as ledger:
        return list(ledger.records(Extracted, flow=FLOW))


def test_a_csv_object_for_the_logical_date_is_delivered_at_its_current_version_and_recorded(world, bucket, gpg_partner):
    client, name = bucket
    today = synthetic.ed_attendances(30, LOGICAL_DATE)
    key = f"ed/{LOGICAL_DATE.isoformat()}/attendances.csv"
    client.put_object(Bucket=name, Key=key, Body=csv_bytes(earlier_version(today)))
    current = client.put_object(Bucket=name, Key=key, Body=csv_bytes(today))
    other_day = LOGICAL_DATE - timedelta(days=1)
    client.put_object(
        Bucket=name,
        Key=f"ed/{other_day.isoformat()}/attendances.csv",
        Body=csv_bytes(synthetic.ed_attendances(30, other_day, seed=5)),
    )
    read_from(world, name, CSV_KEY, batch_rows=7)  # several batches from one streamed body

    results = run_flow(world.run(FLOW), world.resolvers())

    assert results["status"] == "delivered"
    assert delivered_ids(world, gpg_partner) == set(today["attendance_id"])  # not the old version, not the other day
    assert results["extract"]["rows"] == 30 and results["extract"]["batches"] == 5
    [record] = extracts(world)
    head = client.head_object(Bucket=name, Key=key)
    assert record.version_id == current["VersionId"] == head["VersionId"]
    assert record.etag == current["ETag"] and record.size == head["ContentLength"]
    assert (record.connection, record.bucket, record.key, record.format, record.rows) == (
        "rft_s3",
        name,
        key,
        "csv",
        30,
    )
    # Nothing of the extract was put on disk in clear on the way (invariant 6).
    assert files_containing(world.root / "state", list(today["nhs_number"])) == []


def test_a_parquet_object_is_read_by_row_groups_with_its_dates_as_iso_text(world, bucket, gpg_partner):
    import pyarrow as pa
    import pyarrow.parquet as pq

    client, name = bucket
    today = synthetic.ed_attendances(30, LOGICAL_DATE)
    table = pa.Table.from_pandas(today, preserve_index=False)
    # A typed column, as a Parquet export has it: the date reaches quality and generalising as 2015-03-02.
    table = table.set_column(
        table.schema.get_field_index("date_of_birth"),
        "date_of_birth",
        pa.array(pd.to_datetime(today["date_of_birth"]).dt.date, pa.date32()),
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=8)  # four row groups
    key = f"ed/{LOGICAL_DATE:%Y%m%d}/attendances.parquet"
    client.put_object(Bucket=name, Key=key, Body=b"not this version")
    current = client.put_object(Bucket=name, Key=key, Body=sink.getvalue())
    read_from(world, name, PARQUET_KEY)

    run_flow(world.run(FLOW), world.resolvers())

    files = world.delivered("inbound/ed-attendances")
    frame = read_delivery(gpg_partner, files[0])
    assert set(frame["attendance_id"]) == set(today["attendance_id"])
    by_id = dict(zip(frame["attendance_id"], frame["date_of_birth"], strict=True))
    assert all(by_id[i] == dob[:4] for i, dob in zip(today["attendance_id"], today["date_of_birth"], strict=True))
    [record] = extracts(world)
    assert (record.version_id, record.etag, record.format) == (current["VersionId"], current["ETag"], "parquet")
    assert record.key == key


def test_the_version_looked_up_is_the_one_read_even_if_a_new_one_is_written_meanwhile(world, bucket):
    from transfers.s3source import locate, read_batches

    client, name = bucket
    today = synthetic.ed_attendances(30, LOGICAL_DATE)
    key = f"ed/{LOGICAL_DATE.isoformat()}/attendances.csv"
    first = client.put_object(Bucket=name, Key=key, Body=csv_bytes(today))
    read_from(world, name, CSV_KEY)
    source = world.run(FLOW).ref.flow.source

    s3, obj = locate(source, world.connections["rft_s3"], logical_date=LOGICAL_DATE)
    client.put_object(Bucket=name, Key=key, Body=csv_bytes(earlier_version(today)))  # the exporter writes again
    rows = pd.concat(list(read_batches(s3, obj, 10)))

    assert obj.version_id == first["VersionId"]
    assert list(rows["attendance_id"]) == list(today["attendance_id"])


def test_in_a_bucket_without_versions_an_object_replaced_mid_read_is_refused_for_a_retry(world):
    from transfers.s3source import locate, read_batches

    today = synthetic.ed_attendances(30, LOGICAL_DATE)
    with moto_s3("rft_s3") as conn, s3_bucket(conn, "rft-plain", versioned=False) as (client, name):
        key = f"ed/{LOGICAL_DATE.isoformat()}/attendances.csv"
        client.put_object(Bucket=name, Key=key, Body=csv_bytes(today))
        world.connections["rft_s3"] = conn
        read_from(world, name, CSV_KEY)
        s3, obj = locate(world.run(FLOW).ref.flow.source, conn, logical_date=LOGICAL_DATE)
        assert obj.version_id in (None, "null") and obj.etag
        client.put_object(Bucket=name, Key=key, Body=csv_bytes(earlier_version(today)))  # no version to pin

        with pytest.raises(SourceUnavailable, match="replaced while it was being read"):
            list(read_batches(s3, obj, 10))


def test_a_missing_object_names_the_bucket_and_key_and_is_not_retried(world, bucket):
    from transfers.steps.extract import extract

    _client, name = bucket
    read_from(world, name, CSV_KEY)

    with pytest.raises(SourceError) as caught, world.settings.open_ledger() as ledger:
        extract(world.run(FLOW), world.resolvers(), ledger)

    message = str(caught.value)
    key = f"ed/{LOGICAL_DATE.isoformat()}/attendances.csv"
    assert f"bucket {name!r}" in message and f"key {key!r}" in message and "connection 'rft_s3'" in message
    assert f"for {LOGICAL_DATE}" in message and "not there" in message
    assert isinstance(caught.value, TerminalError) and not isinstance(caught.value, SourceUnavailable)
    assert extracts(world) == []


def test_validate_connect_reads_the_object_s_header_and_names_a_missing_one(world, bucket, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    client, name = bucket
    read_from(world, name, CSV_KEY)

    missing = cli("validate", "--connect", FLOW)

    assert missing.exit_code == 1, missing.output
    out = " ".join(missing.output.split())
    assert "FAILED" in out and f"bucket {name!r}" in out and "attendances.csv" in out and "rft_s3" in out

    client.put_object(
        Bucket=name,
        Key=f"ed/{LOGICAL_DATE.isoformat()}/attendances.csv",
        Body=csv_bytes(synthetic.ed_attendances(3, LOGICAL_DATE)),
    )
    found = cli("validate", "--connect", FLOW)

    assert "s3 source answers: 7 columns" in " ".join(found.output.split()), found.output


def test_a_nul_byte_in_the_object_names_its_row_and_column_as_for_a_csv_file(world, bucket):
    from transfers.s3source import locate, read_batches

    client, name = bucket
    key = f"ed/{LOGICAL_DATE.isoformat()}/attendances.csv"
    client.put_object(Bucket=name, Key=key, Body=b'attendance_id,surname\nA1,Jones\nA2,"Smi\x00th"\nA3,Brown\n')
    read_from(world, name, CSV_KEY)
    s3, obj = locate(world.run(FLOW).ref.flow.source, world.connections["rft_s3"], logical_date=LOGICAL_DATE)

    with pytest.raises(SourceError) as caught:
        list(read_batches(s3, obj, 10))

    message = str(caught.value)
    assert message.startswith(f"s3://{name}/{key} (version {obj.version_id})")
    assert "row 2 (line 3), column 'surname'" in message and "NUL byte" in message and "Smi" not in message


class CountingClient:
    """The real boto3 client, noting the bytes each ``GetObject`` asked for (a ranged read names its range)."""

    def __init__(self, client) -> None:
        self._client, self.ranges = client, []

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def get_object(self, **kwargs):
        start, end = kwargs["Range"].removeprefix("bytes=").split("-")
        self.ranges.append(int(end) - int(start) + 1)
        return self._client.get_object(**kwargs)


def test_a_parquet_object_is_fetched_a_row_group_at_a_time_never_whole(world, bucket):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transfers.s3source import locate, read_batches

    client, name = bucket
    rows = 200_000
    table = pa.table({"id": [f"R{i:07d}" for i in range(rows)], "value": [f"{i * 7919:016x}" for i in range(rows)]})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=25_000, compression="none")  # eight row groups of ~0.8 MB
    key = f"ed/{LOGICAL_DATE:%Y%m%d}/attendances.parquet"
    client.put_object(Bucket=name, Key=key, Body=sink.getvalue())
    read_from(world, name, PARQUET_KEY)
    counting = CountingClient(client)
    s3, obj = locate(
        world.run(FLOW).ref.flow.source, world.connections["rft_s3"], logical_date=LOGICAL_DATE, s3=counting
    )

    batches = read_batches(s3, obj, 25_000)
    first = next(batches)

    assert len(first) == 25_000
    assert sum(counting.ranges) < obj.size / 3  # the footer and one row group, not the object
    assert len(first) + sum(len(b) for b in batches) == rows
    assert max(counting.ranges) < obj.size / 3  # no read ever asked for the whole object
