#!/usr/bin/env bash
# Disk report (almanac copy): sizes of the rig's pages.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

pages="$(cd ../../pages && pwd)"
reports="$GT_TOWN/.gtui/demo/reports"
mkdir -p "$reports"
out="$reports/disk-almanac.txt"

{
  echo "disk report for rig ${GT_RIG:-almanac} at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for page in "$pages"/*.md; do
    printf '%6d bytes  %s\n' "$(wc -c < "$page")" "$(basename "$page")"
  done
} > "$out"
cat "$out"
echo "wrote $out"
