#!/usr/bin/env bash
# Rotate logs: append a line, and rotate town.log -> .1 -> .2 -> .3 past 5 lines.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

logs="$GT_TOWN/.gtui/demo/logs"
log="$logs/town.log"
max_lines=5
keep=3
mkdir -p "$logs"

echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) run ${GT_RUN_ID:-?} by dog ${GT_DOG:-?}" >> "$log"
lines="$(wc -l < "$log" | tr -d ' ')"
echo "town.log has $lines line(s) (rotate above $max_lines)"

if (( lines > max_lines )); then
  rm -f "$log.$keep"
  for (( i = keep - 1; i >= 1; i-- )); do
    if [[ -f "$log.$i" ]]; then
      mv "$log.$i" "$log.$((i + 1))"
    fi
  done
  mv "$log" "$log.1"
  : > "$log"
  echo "rotated: town.log -> town.log.1 (keeping $keep old files)"
else
  echo "no rotation needed"
fi
ls -1 "$logs" | sed 's/^/  /'
