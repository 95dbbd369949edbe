#!/usr/bin/env bash
# psql: runs session.sql through redveil (sslmode=verify-full with the test CA) and compares
# its output with expected.out, after filling in the row counts of the demo data.
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)

conninfo() {
    local user=$1 var="REDVEIL_PASSWORD_${1^^}"
    printf "host=%s port=%s dbname=%s user=%s password='%s' sslmode=verify-full sslrootcert='%s' application_name=redveil-clients-psql" \
        "$REDVEIL_HOST" "$REDVEIL_PORT" "$REDVEIL_DATABASE" "$user" "${!var}" "$REDVEIL_CA"
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
psql -X -A -t -v ON_ERROR_STOP=1 \
    -v admin="$(conninfo admin)" \
    -v min_backends="${REDVEIL_MIN_BACKENDS:-2}" \
    -v scratch="$REDVEIL_SCRATCH_TABLE" \
    -v client="$REDVEIL_CLIENT" \
    -f "$dir/session.sql" "$(conninfo analyst)" >"$out" || status=$?
psql --version

expected=$(sed -e "s/{EU}/$REDVEIL_EU_ROWS/g" -e "s/{TOTAL}/$REDVEIL_TOTAL_ROWS/g" \
    -e "s/{OUTSIDE_EU}/$((REDVEIL_TOTAL_ROWS - REDVEIL_EU_ROWS))/g" "$dir/expected.out")
if [ "$status" -ne 0 ] || ! diff -u <(echo "$expected") "$out"; then
    echo "psql exited with $status; its output:"
    cat "$out"
    exit 1
fi
grep '^-- ' "$out" | sed 's/^-- /ok /'
echo "session complete"
