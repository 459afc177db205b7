"""Where a run's working files live, so any task can run on any worker (``TRANSFERS_WORK_STORE``).

``local`` (the default): under ``TRANSFERS_HOME``, one machine. An absolute path: a shared volume every
worker mounts, holding ``runs/`` and ``outbox/`` (``HomeLayout.work``); nothing else changes. ``s3://bucket/
prefix``: an object store; each DAG task checks the run's files out at its start and commits them at its
success (``task_files``), keeping nothing between tasks. Everything there is already encrypted (staging
under the staging key, the outbox with OpenPGP).

    where.py     what the setting names (``parse_work_store``)
    objects.py   the S3 objects, through boto3 (list, download, upload, delete)
    checkout.py  one task's checkout and commit of its run's working files
    lazy.py      the staging parts a checkout leaves in the store, fetched when opened (``StoredParts``)
    outputs.py   what a task writes beside them (reports, notices, its log part), published
    mirror.py    readers' copies of the published reports (``mirror_reports``)
    task.py      both, for one DAG task (``task_files``)
    run.py       a whole run's: the CLI's outbox (``commit_outbox``), cleanup's staging (``drop_staging``)
"""

from __future__ import annotations

from transfers.workstore.run import commit_outbox, drop_staging
from transfers.workstore.task import task_files
from transfers.workstore.where import S3Place, parse_work_store

__all__ = ["S3Place", "commit_outbox", "drop_staging", "parse_work_store", "task_files"]
