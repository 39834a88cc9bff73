#!/usr/bin/env bash
# Disk report (town copy): sizes of everything under $GT_TOWN/.gtui.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

reports="$GT_TOWN/.gtui/demo/reports"
mkdir -p "$reports"
out="$reports/disk-town.txt"

{
  echo "disk report for $GT_TOWN/.gtui at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  du -sk "$GT_TOWN/.gtui"/* 2>/dev/null | sort -rn || true
} > "$out"
cat "$out"
echo "wrote $out"
