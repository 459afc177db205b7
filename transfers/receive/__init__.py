"""The recipient's side of an exchange: verify, load, quarantine, receipt."""
