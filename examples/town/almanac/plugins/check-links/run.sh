#!/usr/bin/env bash
# Check links: every relative .md link in almanac/pages must name an existing page.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

pages="$(cd ../../pages && pwd)"
reports="$GT_TOWN/.gtui/demo/reports"
mkdir -p "$reports"

checked=0
broken=()
for page in "$pages"/*.md; do
  while IFS= read -r target; do
    checked=$((checked + 1))
    if [[ ! -f "$pages/$target" ]]; then
      broken+=("$(basename "$page") -> $target")
    fi
  done < <(grep -oE '\]\([^):#]+\.md\)' "$page" | sed 's/^](//; s/)$//' || true)
done

{
  echo "checked $checked link(s) in $pages"
  for link in ${broken[@]+"${broken[@]}"}; do echo "broken: $link (no such page)"; done
} | tee "$reports/links-almanac.txt"

if (( ${#broken[@]} > 0 )); then
  echo "check-links: ${#broken[@]} broken link(s), first: ${broken[0]} (no such page)" >&2
  exit 1
fi
echo "all links ok"
