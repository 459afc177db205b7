"""The steps of one flow run, one module each, named as the DAG's tasks are.

* :mod:`~transfers.steps.check_agreement`: refuse unless the agreement is live; who still needs the data.
* :mod:`~transfers.steps.extract`: the source into encrypted staging batches.
* :mod:`~transfers.steps.quality`: the six characteristics, the data owner's report, the policy.
* :mod:`~transfers.steps.prepare`: hold back, exclude, minimise, pseudonymise, generalise.
* :mod:`~transfers.steps.encrypt`: one recipient's sealed outbox (signed parts, the manifest and its signature).
* :mod:`~transfers.steps.deliver`: archive, upload, record the disclosure once.
* :mod:`~transfers.steps.await_receipt`: the recipient's signed receipt, verified and recorded (a wait step).
* :mod:`~transfers.steps.notify`: withdrawal notices to earlier recipients.
* :mod:`~transfers.steps.cleanup`: the run's working files removed.

Every step is ``step(run, resolvers, ledger[, recipient]) -> result``: it resolves its own
connections and secrets through ``resolvers``, and its result is a small JSON-able
``TypedDict`` (counts, names, hashes), what a DAG task may put in XCom. Personal data
passes between steps only as encrypted staging files. :mod:`transfers.pipeline` lists
them in order (``STEPS``); a step never imports the pipeline.

Heavy libraries (pandas, pgpy, paramiko, GX) are imported inside the step functions:
the DAG file imports this package when it is parsed.
"""
