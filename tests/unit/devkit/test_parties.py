"""The demo's copy of the agreement: what ``hold_back`` changes in each flow's quality policy, and what it keeps."""

from __future__ import annotations

from transfers.devkit.parties import hold_back_instead_of_blocking


def test_blocking_characteristics_quarantine_and_the_rest_stay_as_agreed():
    agreement = {"flows": [
        {"id": "A", "quality": {"on_failure": {"accuracy": "block", "validity": "warn", "timeliness": "block"}}},
        {"id": "B"},  # no policy at all: every characteristic blocks
    ]}

    changed = hold_back_instead_of_blocking(agreement, ["accuracy", "validity", "completeness"])

    assert changed == {"A": ["accuracy", "completeness"], "B": ["accuracy", "validity", "completeness"]}
    assert agreement["flows"][0]["quality"]["on_failure"] == {
        "accuracy": "quarantine", "validity": "warn", "timeliness": "block", "completeness": "quarantine"}
    assert agreement["flows"][1]["quality"]["on_failure"] == dict.fromkeys(
        ["accuracy", "validity", "completeness"], "quarantine")


def test_nothing_to_hold_back_changes_nothing():
    agreement = {"flows": [{"id": "A", "quality": {"on_failure": {"accuracy": "block"}}}]}
    assert hold_back_instead_of_blocking(agreement, []) == {}
    assert agreement["flows"][0]["quality"]["on_failure"] == {"accuracy": "block"}
