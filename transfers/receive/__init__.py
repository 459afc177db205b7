"""The recipient's side of an exchange: open a partner's delivery from our inbox and check every part of it.

- ``verify``: ``open_delivery`` checks a delivery's signed manifest against the agreement we
  hold and its files against the manifest, then yields the rows one part at a time
  (``Delivery.parts``), decrypted and signature-checked in memory; ``pending_bases`` lists
  the deliveries whose manifests have arrived.
"""
