"""The retention block of an agreement: a valid period for every place, one archive store, folders in their place.

Broken configs are made per test by editing a copy of the real ``config/`` as data.
"""

from __future__ import annotations

import pytest

from tests.support.config_edits import edit, problems
from transfers.agreement import load_config


@pytest.mark.parametrize(
    ("change", "key_path", "message"),
    [
        (lambda r: r.update(remote={"sender_may_remove": True}), "flows[0].retention.remote.period",
         "required key is missing"),
        (lambda r: r.update(archive={"dir": "archive"}), "flows[0].retention.archive.period",
         "required key is missing"),
        (lambda r: r.pop("staging"), "flows[0].retention.staging", "required key is missing"),
        (lambda r: r.update(notices="90 days"), "flows[0].retention.notices", "'90 days'"),
        (lambda r: r.update(logs="P0D"), "flows[0].retention.logs", "zero duration"),
        (lambda r: r.update(archive={"period": "P1Y", "dir": "a", "bucket": "isp-archive", "connection": "s3"}),
         "flows[0].retention.archive", "exactly one"),
        (lambda r: r.update(archive={"period": "P1Y", "bucket": "isp-archive"}), "flows[0].retention.archive",
         "needs 'connection'"),
        (lambda r: r.update(archive={"period": "P1Y", "bucket": "No_Such", "connection": "s3"}),
         "flows[0].retention.archive", "'No_Such' is not a valid S3 bucket name"),
        (lambda r: r.update(archive={"period": "P1Y", "bucket": "isp-archive", "connection": "s3",
                                     "prefix": "../up"}), "flows[0].retention.archive", "'..'"),
        (lambda r: r.update(remote={"period": "P14D", "sender_may_remove": True, "when": 1}),
         "flows[0].retention.remote.when", "unknown key"),
    ],
)
def test_a_place_without_a_valid_period_or_store_names_the_file_and_key(config_dir, change, key_path, message):
    path = edit(config_dir, lambda d: change(d["flows"][0]["retention"]))

    text = problems(config_dir)
    assert f"{path}: {key_path}: " in text, text
    assert message in text.split(f"{path}: {key_path}: ", 1)[1].splitlines()[0]


def test_a_bare_remote_period_does_not_let_the_sender_delete_on_the_partners_server(config_dir):
    edit(config_dir, lambda d: d["flows"][0]["retention"].update(remote="P14D"))

    flow = load_config(config_dir).flow("mash-referrals.A").flow
    assert flow.retention.remote.period.text == "P14D"
    assert flow.retention.remote.sender_may_remove is False


@pytest.mark.parametrize(("folder", "message"), [(".", "not the home itself"), ("./", "not the home itself"),
                                                 ("outbox", "already uses"), ("logs/archive", "already uses"),
                                                 ("ledger.db", "already uses"), ("a\\..\\..\\b", "'..'")])
def test_an_archive_dir_on_home_itself_or_another_place_is_rejected(config_dir, folder, message):
    path = edit(config_dir, lambda d: d["flows"][0]["retention"].update(archive={"period": "P6M", "dir": folder}))

    text = problems(config_dir)
    assert f"{path}: flows[0].retention.archive.dir: " in text and message in text, text
