"""The recipient's side of a flow: collect a delivery from the inbox, verify it, load it, return a receipt.

``run.receive`` is what the receive DAG's sensor and ``transfers receive`` call.
"""
