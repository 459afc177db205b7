# syntax=docker/dockerfile:1
# The isp-transfers image: Airflow 3 and this project at exactly the versions in uv.lock, nothing else.
# docker-compose.yml builds it (`docker compose build`); README "Deploying (docker compose)".
#
# FROM python:slim rather than apache/airflow: that image already holds ~80 providers and their own
# pins, and installing this lock over them would leave one environment with two resolutions in it.
# Here the environment is made by `uv sync --locked` alone, the command
# tests/integration/test_image_install.py runs into a clean venv on this machine.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
# The venv outside the source tree; bytecode compiled at install (every `transfers` run imports
# Great Expectations); files copied, not hard-linked from a cache that stays in this stage;
# the image's own Python, never one uv downloads.
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
# The dependencies first, in a layer reused until uv.lock changes; then the project, as a wheel
# (--no-editable: the venv must not point back into /src, which the final image does not have).
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --extra deploy --no-editable --no-install-project
COPY transfers/ transfers/
COPY transfers_airflow/ transfers_airflow/
RUN uv sync --locked --no-dev --extra deploy --no-editable

FROM python:${PYTHON_VERSION}-slim-bookworm
# The official image's airflow user (uid 50000, group 0): volumes prepared for one suit the other.
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home --shell /bin/bash airflow \
    && mkdir -p /opt/airflow/logs /var/lib/isp-transfers \
    && chown -R 50000:0 /opt/airflow /var/lib/isp-transfers
COPY --from=build /opt/venv /opt/venv
# The DAG loader is code of this version, so it is in the image; config/, keys/ and expectations/
# are the deployment's own and are mounted read-only by docker-compose.yml.
COPY dags/ /opt/isp-transfers/dags/
COPY deploy/airflow-init.sh /opt/isp-transfers/deploy/airflow-init.sh
COPY deploy/object-store-init /opt/isp-transfers/deploy/object-store-init
ENV PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    TRANSFERS_HOME=/var/lib/isp-transfers \
    PYTHONUNBUFFERED=1
USER 50000:0
WORKDIR /opt/airflow
CMD ["airflow", "version"]
