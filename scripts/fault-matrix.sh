#!/usr/bin/env bash
# Prints the fault matrix the integration tests recorded (one row a test
# that injected a fault, see tests/suite/fault_matrix.rs) as a Markdown table.
#
#   scripts/fault-matrix.sh [DIR]   # default: $CARGO_TARGET_DIR/tmp/fault-matrix
set -euo pipefail
dir="${1:-${CARGO_TARGET_DIR:-/var/tmp/provision-target}/tmp/fault-matrix}"
if ! compgen -G "$dir/*.tsv" >/dev/null; then
  echo "no fault matrix rows in $dir (run the tests first)" >&2
  exit 1
fi
echo "| # | fault | what happened | nodes replaced | left over |"
echo "|---|---|---|---|---|"
for row in "$dir"/*.tsv; do
  id="$(basename "$row" .tsv)"
  IFS=$'\t' read -r fault happened remediations left <"$row"
  printf '| %s | %s | %s | %s | %s |\n' "$id" "$fault" "$happened" "$remediations" "$left"
done
