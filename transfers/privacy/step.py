"""The privacy side of the prepare step: exclusions, subjects sent, k check, ledger entries.

The prepare step (``transfers.steps.prepare``) reads the extract batch by batch; for each batch
:class:`Screening` first removes the rows that may not be sent (consent
withdrawn or restricted, national data opt-out, deceased), then, after the
field transforms, notes which subjects are being sent and counts the
quasi-identifier groups. :meth:`Screening.finish` writes the ledger entries
(what was excluded and why, the k found, any sharing without consent, a key
rotation) and blocks the run if the flow asks for a k that was not reached.

Only counts, reasons, keyed lookups and pseudonyms are recorded, never an identifier.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from transfers.connections import ConnInfo
from transfers.consent import LABELS, NOTIFIED, REASONS, SubjectLists, load_subject_lists, reason_label
from transfers.errors import DisclosureRiskBlocked, PrivacyError
from transfers.ledger.records import PrivacyResult, PseudonymKey, SharedWithoutConsent
from transfers.logs import get_logger
from transfers.privacy import members
from transfers.privacy.pseudonyms import derive_key, digests, key_fingerprint, normalise_all
from transfers.privacy.risk import GroupCounter, KResult
from transfers.privacy.staged import StagedSubjects
from transfers.privacy.subjects import SubjectIndex, lookup_key, lookup_of, prepared_prefix

if TYPE_CHECKING:
    from transfers.flowrun import FlowRun
    from transfers.ledger import Ledger

log = get_logger(__name__)


def pseudonym_key(run: FlowRun, secret: Callable[[str], str]) -> bytes | None:
    """The run's pseudonymisation key, per linkage domain (None when the agreement pseudonymises nothing)."""
    setting = run.ref.agreement.pseudonymisation
    if setting is None:
        return None
    domain = setting.linkage_domain or run.ref.agreement.id
    return derive_key(secret(setting.key_secret), domain=domain, key_id=setting.key_id)


def subject_lookup_key(run: FlowRun, secret: Callable[[str], str]) -> bytes | None:
    """The run's local lookup key (None when the agreement has no pseudonymisation secret)."""
    setting = run.ref.agreement.pseudonymisation
    if setting is None:
        return None
    return lookup_key(secret(setting.key_secret), run.ref.agreement.id)


class Screening:
    """Exclusions and subject bookkeeping for one prepare step."""

    def __init__(self, run: FlowRun, *, key: bytes | None, lookup: bytes | None,
                 connection: Callable[[str], ConnInfo] | None) -> None:
        self.run = run
        self.flow = run.ref.flow
        self.key = key
        self.lookup = lookup
        self.lists: SubjectLists = load_subject_lists(self.flow.consent, connection, run.logical_date)
        self.statutory = self.flow.consent.basis == "statutory"
        self.override = self.statutory and self.flow.consent.override_opt_outs
        self.excluded: Counter[str] = Counter()
        self.overridden: Counter[str] = Counter()
        self.deceased_sent = 0
        self.unchecked = 0
        self.rows_sent = 0
        self.rows_screened = 0  # = excluded (every reason) + sent
        self.groups = GroupCounter(self.flow.disclosure_risk) if self.flow.disclosure_risk else None
        # A fresh reference per attempt: a failed attempt's subjects never count as sent.
        self.ref = prepared_prefix(run.ref.key, run.ds) + uuid.uuid4().hex
        self.index = SubjectIndex.for_settings(run.settings) if lookup is not None else None
        self.staged = StagedSubjects(self.index) if self.index is not None else None
        # Applied by every flow of the agreement, whatever its basis or source register says.
        self.notified: set[str] = self.index.withdrawn(run.ref.agreement.id) if self.index is not None else set()
        self.notified_seen: set[str] = set()
        setting = run.ref.agreement.pseudonymisation
        self.key_id = setting.key_id if setting else None
        # The batch screen last returned, with its subjects' normal forms and reasons: sent() and
        # apply_privacy reuse them rather than normalising the same column again.
        self._kept: tuple[pd.DataFrame, pd.Series, pd.Series] | None = None

    def _fields(self, event: str, detail: str | None, ref: str) -> dict[str, Any]:
        return {"event": event, "agreement": self.run.ref.agreement.id, "flow": self.run.ref.key,
                "logical_date": self.run.logical_date, "recipient": None, "key_id": self.key_id, "detail": detail,
                "ref": ref}

    def _lookups(self, normal: pd.Series) -> list[bytes]:
        """The full keyed lookup digest of each normalised subject (their hex is what registers hold)."""
        assert self.lookup is not None
        return digests(normal, self.lookup)

    def screen(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The batch without the rows that may not be sent; the excluded are counted and recorded."""
        self.rows_screened += len(batch)
        if not len(batch):
            return batch
        subject_col = self.flow.subject
        if subject_col not in batch.columns:
            raise PrivacyError(f"flow {self.run.ref.key}: the subject field {subject_col!r} is not in the extract")
        deceased = self.flow.deceased
        if deceased is not None and deceased.date_of_death not in batch.columns:
            raise PrivacyError(f"flow {self.run.ref.key}: deceased.date_of_death field {deceased.date_of_death!r} "
                               "is not in the extract; nothing was prepared")
        normal = normalise_all(batch[subject_col])
        present = normal != ""
        self.unchecked += int((~present).sum())
        reasons = self._reasons(normal, present)
        if deceased is not None:
            dead = normalise_all(batch[deceased.date_of_death]) != ""
        else:
            dead = pd.Series(False, index=batch.index)
        # Each check on its own: overriding an opt-out never also overrides the deceased choice.
        excluded = reasons.where(reasons.notna() & (not self.override), None)
        if deceased is not None and deceased.handling != "send_with_caution":
            excluded = excluded.where(excluded.notna() | ~dead, "deceased")
        keep = excluded.isna()
        self.excluded.update(excluded[~keep].value_counts(sort=False).to_dict())
        self.overridden.update(reasons[keep & reasons.notna()].value_counts(sort=False).to_dict())
        self.deceased_sent += int((keep & dead).sum())
        recorded = ~keep & present
        if recorded.any() and self.staged is not None:
            ref = f"excluded:{self.run.ref.key}:{self.run.ds}"
            tokens = [d[:members.TOKEN_BYTES] for d in self._lookups(normal[recorded])]
            labels = excluded[recorded].map(lambda r: LABELS.get(r, r)).to_numpy()
            for label in dict.fromkeys(labels.tolist()):
                chosen = (labels == label).nonzero()[0].tolist()
                self.staged.add(self._fields("excluded", label, ref), [tokens[i] for i in chosen],
                                [b""] * len(chosen))
        kept = batch[keep]
        self._kept = (kept, normal[keep], reasons[keep])
        return kept

    def normalised(self, batch: pd.DataFrame) -> dict[str, pd.Series]:
        """The normal forms screen already made for ``batch``'s subject column, by field name, for
        :func:`~transfers.privacy.transforms.apply_privacy`; empty unless ``batch`` is what screen last returned."""
        if self._kept is not None and self._kept[0] is batch:
            return {self.flow.subject: self._kept[1]}
        return {}

    def sent(self, raw: pd.DataFrame, safe: pd.DataFrame) -> None:
        """Note the subjects of rows about to be sent, and count their quasi-identifier groups."""
        self.rows_sent += len(safe)
        if self.groups is not None:
            self.groups.add(safe)
        if self.staged is None or not len(raw):
            return
        subject_col = self.flow.subject
        screened = self._kept if self._kept is not None and self._kept[0] is raw else None
        self._kept = None
        normal = screened[1] if screened is not None else normalise_all(raw[subject_col])
        present = (normal != "").to_numpy()
        if not present.any():
            return
        normal = normal[present]
        tokens = [d[:members.TOKEN_BYTES] for d in self._lookups(normal)]
        # The pseudonym the recipient holds; if the subject field is not sent as a
        # pseudonym, the agreement key's pseudonym still identifies it in notices.
        if self.flow.fields[subject_col].share == "pseudonymise":
            pseudonyms = members.encode_pseudonyms(safe[subject_col].to_numpy()[present].tolist())
        elif self.key is not None:
            pseudonyms = digests(normal, self.key)
        else:
            pseudonyms = [b""] * len(tokens)
        details = self._details(normal, screened[2][present] if screened is not None else None)
        if len(set(details)) == 1:
            self.staged.add(self._fields("prepared", details[0], self.ref), tokens, pseudonyms)
            return
        labels = np.array(details, dtype=object)
        for detail in dict.fromkeys(details):
            chosen = (labels == detail).nonzero()[0].tolist()
            self.staged.add(self._fields("prepared", detail, self.ref), [tokens[i] for i in chosen],
                            [pseudonyms[i] for i in chosen])

    def _details(self, normal: pd.Series, reasons: pd.Series | None = None) -> list[str | None]:
        """What a subject access request must show about this disclosure: shared without consent, and why
        (``reasons``: :meth:`_reasons` of ``normal`` if screen already found them)."""
        if not self.statutory:
            return [None] * len(normal)
        detail = f"without consent: {self.flow.consent.ground}"
        if reasons is None:
            reasons = self._reasons(normal, pd.Series(True, index=normal.index))
        return [f"{detail}; {reason_label(r)} overridden" if isinstance(r, str) else detail for r in reasons.tolist()]

    def _reasons(self, normal: pd.Series, present: pd.Series) -> pd.Series:
        """Per subject, the first reason in :data:`REASONS` order it may not be sent under consent, or None."""
        here = present.to_numpy()
        reasons = self.lists.reasons(normal).to_numpy(dtype=object)
        reasons[~here] = None
        if self.notified and self.lookup is not None:
            candidates: np.ndarray = (here & (reasons != "withdrawn")).nonzero()[0]
            if len(candidates):
                found = np.array([d.hex() for d in self._lookups(normal.iloc[candidates])], dtype=object)
                hit = np.fromiter((lookup in self.notified for lookup in found), dtype=bool, count=len(found))
                if hit.any():
                    self.notified_seen.update(found[hit].tolist())
                    reasons[candidates[hit]] = NOTIFIED
        return pd.Series(reasons, index=normal.index, dtype=object)

    # ------------------------------------------------------------------ end of the step

    def finish(self, ledger: Ledger | None) -> dict:
        run = self.run
        if self.staged is not None:
            self.staged.flush()  # before anything names this attempt's set
        agreement, flow = run.ref.agreement, self.flow
        result: dict[str, Any] = {
            # Every reason counted, the known ones first: a new reason must not drop out of the totals.
            "excluded": {r: n for r, n in sorted(self.excluded.items(), key=_reason_order) if n},
            "basis": flow.consent.basis,
        }
        if flow.deceased is not None:
            result["deceased"] = {"handling": flow.deceased.handling,
                                  "excluded": self.excluded["deceased"], "sent_with_caution": self.deceased_sent}
        if self.overridden:
            result["opt_outs_overridden"] = dict(self.overridden)
        if self.unchecked and (flow.consent.consent_register or flow.consent.opt_outs):
            result["unchecked_no_subject_id"] = self.unchecked
        k: KResult | None = self.groups.result() if self.groups is not None else None
        if k is not None:
            result["k"] = k.to_dict()
        if ledger is not None:
            self._record_key(ledger)
            columns: dict[str, Any] = {"agreement": agreement.id, "flow": run.ref.key, "logical_date": run.logical_date}
            ledger.record(PrivacyResult(**columns, **result, rows_screened=self.rows_screened,
                                        rows_sent=self.rows_sent, pseudonym_key_id=self.key_id))
            if self.statutory:
                basis = flow.consent
                ledger.record(SharedWithoutConsent(
                    **columns, legal_basis=basis.legal_basis, ground=basis.ground,
                    justification=basis.justification, override_opt_outs=basis.override_opt_outs,
                    rows=self.rows_sent, opt_outs_overridden=dict(self.overridden)))
        if ledger is not None and self.notified_seen:
            from transfers.incidents import withdrawn_subjects_seen

            withdrawn_subjects_seen(ledger, run, self.notified_seen)
        run.staging.write_json("subjects_ref", self.ref if self.index is not None else None)
        withdrawn = sorted(self.lists.withdrawn | self.lists.restricted)
        # Notified subjects met again are included so a notice that failed at `consent withdraw`, or a
        # recipient that has received one since under a statutory override, is told tonight.
        run.staging.write_json("withdrawn_lookups", sorted({lookup_of(s, self.lookup) for s in withdrawn}
                                                           | self.notified_seen) if self.lookup is not None else [])
        if k is not None and not k.passed:
            where = f"flow {run.ref.key} on {run.ds}"
            quasi = ", ".join(k.quasi_identifiers)
            if k.on_failure == "block":
                raise DisclosureRiskBlocked(
                    f"{where}: blocked by disclosure risk: smallest group k={k.k} is below min_k={k.min_k} "
                    f"on quasi-identifiers ({quasi}); nothing was sent. Generalise further or review the agreement")
            log.warning("disclosure risk below min_k", flow=run.ref.key, logical_date=run.ds, k=k.k, min_k=k.min_k)
        self.close()
        return result

    def close(self) -> None:
        """Let go of the register (anything not yet flushed is dropped: a failed attempt)."""
        if self.staged is not None:
            self.staged.close()
            self.staged = None
        if self.index is not None:
            self.index.close()

    def _record_key(self, ledger: Ledger) -> None:
        """Record the key in use; a different key id or key than last time is a rotation."""
        setting = self.run.ref.agreement.pseudonymisation
        if setting is None or self.key is None:
            return
        agreement = self.run.ref.agreement
        domain = setting.linkage_domain or agreement.id
        fingerprint = key_fingerprint(self.key)
        previous = None
        for recorded in ledger.records(PseudonymKey, agreement=agreement.id):
            if recorded.domain == domain:
                previous = recorded
        current = PseudonymKey(agreement=agreement.id, flow=self.run.ref.key, logical_date=self.run.logical_date,
                               domain=domain, key_id=setting.key_id, key_fingerprint=fingerprint)
        if previous is not None and previous.identity() == current.identity():
            return
        ledger.record(current if previous is None else
                      dataclasses.replace(current, event="rotation", previous=previous.identity()))


def _outbox_key(run: FlowRun, outbox: Path) -> str:
    return f"{run.ref.key}:{run.ds}:{outbox.name}"


def seal_subjects(run: FlowRun, outbox: Path) -> None:
    """Record which prepare step's subjects a recipient's sealed outbox holds.

    The outbox is reused on a retry while a retry prepares again under a new
    reference, so the reference must stay with the outbox, not the run.
    """
    index = SubjectIndex.for_settings(run.settings)
    try:
        index.seal(_outbox_key(run, outbox), run.staging.read_json("subjects_ref", None))
    finally:
        index.close()


def record_disclosure(run: FlowRun, recipient: str, disclosure_key: str, outbox: Path | None = None) -> dict | None:
    """Copy the delivered outbox's subjects to the disclosure; return the count and hash for its ledger entry."""
    if outbox is not None:
        index = SubjectIndex.for_settings(run.settings)
        try:
            ref = index.sealed(_outbox_key(run, outbox))
        finally:
            index.close()
    else:
        ref = run.staging.read_json("subjects_ref", None)
    if not ref:
        return None
    index = SubjectIndex.for_settings(run.settings)
    try:
        index.copy_prepared(ref, disclosure_ref=disclosure_key, recipient=recipient)
        return index.digest("disclosed", disclosure_key)
    finally:
        index.close()


def _reason_order(item: tuple[str, int]) -> tuple[int, str]:
    return (REASONS.index(item[0]) if item[0] in REASONS else len(REASONS), item[0])

