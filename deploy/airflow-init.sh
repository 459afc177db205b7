#!/usr/bin/env bash
# airflow-init: run by `docker compose up` before every other Airflow service, which waits for it
# to exit 0 (depends_on: service_completed_successfully). In order:
#   1. as root: the shared volumes (task logs, TRANSFERS_HOME) become the airflow user's; a volume
#      made by an earlier compose file, or restored from a backup, may be root's and unwritable;
#   2. as the airflow user: Airflow's metadata database migrated (with FAB's user tables);
#   3. the first admin user, once, its password from the airflow_admin_password secret, and the
#      FAB roles that open the IG pages (AIRFLOW__TRANSFERS__IG_ROLES), for the admin to give;
#   4. the ledger opened and verified in its own database, as its own role, with its anchor in the
#      object store (TRANSFERS_LEDGER_ANCHOR_URL; object-store-init made the bucket, versioned, first);
#   5. `transfers validate`: a broken agreement or an undefined connection stops the deployment
#      here, with the file or id named, instead of failing the first night.
set -euo pipefail
shopt -s extglob

airflow_uid="${AIRFLOW_UID:-50000}"
if [[ "$airflow_uid" == 0 ]]; then
  echo "airflow-init: AIRFLOW_UID is 0; the services must not run as root (unset it, or give the uid they run as)" >&2
  exit 2
fi

if [[ "$(id -u)" == 0 ]]; then
  for dir in "$AIRFLOW_HOME/logs" "$TRANSFERS_HOME"; do
    mkdir -p "$dir"
    chown -R "$airflow_uid:0" "$dir"
    chmod -R u+rwX,g+rwX "$dir"
  done
  # The rest runs as the user the long-running services run as, so what it creates is theirs.
  exec setpriv --reuid="$airflow_uid" --regid=0 --clear-groups -- env HOME="$AIRFLOW_HOME" "$0" "$@"
fi

echo "==> Airflow $(airflow version): migrating the metadata database"
airflow db migrate

admin_password="${AIRFLOW_ADMIN_PASSWORD_FILE:-/run/secrets/airflow_admin_password}"
if [[ -s "$admin_password" ]]; then
  echo "==> admin user ${AIRFLOW_ADMIN_USER:-admin} (kept if it exists)"
  airflow users create --role Admin --username "${AIRFLOW_ADMIN_USER:-admin}" \
    --firstname "${AIRFLOW_ADMIN_FIRSTNAME:-Airflow}" --lastname "${AIRFLOW_ADMIN_LASTNAME:-Admin}" \
    --email "${AIRFLOW_ADMIN_EMAIL:-admin@localhost}" --password "$(cat "$admin_password")"
fi

if [[ -n "${AIRFLOW__TRANSFERS__IG_ROLES:-}" ]]; then
  IFS=, read -r -a ig_roles <<< "$AIRFLOW__TRANSFERS__IG_ROLES"
  for role in "${ig_roles[@]}"; do
    role="${role##+([[:space:]])}" role="${role%%+([[:space:]])}"  # the setting's spaces after commas
    echo "==> role '$role' (opens the IG report and the subject look-up; kept if it exists)"
    airflow roles create "$role"
  done
fi

echo "==> the disclosure ledger, in its own database${TRANSFERS_LEDGER_ANCHOR_URL:+ (anchor: $TRANSFERS_LEDGER_ANCHOR_URL)}"
transfers ledger verify

echo "==> the agreements, keys and connections"
transfers validate
