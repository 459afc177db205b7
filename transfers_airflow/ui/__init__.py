"""Pages in the Airflow UI for the people who read this product's outputs (an Airflow 3 plugin).

Data owners read their flows' quality scorecards and rectification notices, IG officers the IG
report, the rendered agreement and a subject's trail, in the Airflow they already sign in to,
instead of HTML files on the scheduler's disk. ``plugin`` registers the plugin (entry point
``airflow.plugins`` in pyproject.toml, so an installed package is found without a plugins
folder); ``app`` is the FastAPI app it mounts in the API server; ``auth`` says who may see what.
"""

#: Where the API server mounts the pages.
URL_PREFIX = "/transfers"
