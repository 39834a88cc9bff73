#!/usr/bin/env bash
# Word count: words per almanac page, plus a total.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

pages="$(cd ../../pages && pwd)"
reports="$GT_TOWN/.gtui/demo/reports"
mkdir -p "$reports"
out="$reports/words-almanac.txt"

total=0
{
  for page in "$pages"/*.md; do
    words="$(wc -w < "$page" | tr -d ' ')"
    total=$((total + words))
    printf '%5d words  %s\n' "$words" "$(basename "$page")"
  done
  printf '%5d words  total\n' "$total"
} > "$out"
cat "$out"
echo "wrote $out"
