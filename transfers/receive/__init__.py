"""The recipient's side of an exchange: verify a partner's delivery, load it, quarantine what fails, return a receipt.

``run.receive`` composes the modules: ``verify`` (signatures, hashes, the agreement's columns and
rows), ``store`` (one SQL table per flow, loaded in one idempotent transaction) and
``quarantine`` (rejected deliveries kept encrypted with their reason). ``notices.apply_notices`` acts on
a sender's withdrawal and correction notices (``subject_rows``: the subject's rows deleted or marked)
and returns a signed confirmation for each.
"""
