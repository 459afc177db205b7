"""The run's one-line privacy summary: reasons, counts and k, never a value."""

from __future__ import annotations


def test_the_run_summary_names_reasons_counts_and_k_but_no_values():
    from transfers.cli.privacy import privacy_summary

    line = privacy_summary({"excluded": {"withdrawn": 2, "opted_out": 1}, "basis": "consent",
                            "deceased": {"handling": "send_with_caution", "excluded": 0, "sent_with_caution": 1},
                            "k": {"k": 2, "quasi_identifiers": ["yob", "district"], "passed": False, "min_k": 3}},
                           {"sent": 1, "already_sent": 0})
    assert line == ("privacy: excluded 2 withdrawn, 1 opted out; 1 deceased sent with caution; "
                    "k=2 on yob, district (below min_k 3); 1 withdrawal notice(s) sent")
    assert privacy_summary({"basis": "consent", "excluded": {}}) == ""


def test_a_notified_withdrawal_reads_as_such_in_the_run_summary():
    from transfers.cli.privacy import privacy_summary

    line = privacy_summary({"excluded": {"withdrawn_notified": 1}, "basis": "statutory",
                            "opt_outs_overridden": {"withdrawn_notified": 2}})
    assert line == ("privacy: excluded 1 withdrawn (notified); sent despite 2 withdrawn (notified); "
                    "shared without consent (recorded in the ledger)")
