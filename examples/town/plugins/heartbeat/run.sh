#!/usr/bin/env bash
# Heartbeat: write who/when to a file under the town's demo directory.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

demo="$GT_TOWN/.gtui/demo"
mkdir -p "$demo"
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

{
  echo "town:   $GT_TOWN"
  echo "time:   $now"
  echo "dog:    ${GT_DOG:-?}"
  echo "run:    ${GT_RUN_ID:-?}"
} > "$demo/heartbeat.txt"
echo "$now ${GT_RUN_ID:-?} ${GT_DOG:-?}" >> "$demo/heartbeat.log"

beats="$(wc -l < "$demo/heartbeat.log" | tr -d ' ')"
echo "heartbeat at $now from dog ${GT_DOG:-?}"
echo "wrote $demo/heartbeat.txt"
echo "the town has started $beats time(s)"
