#!/usr/bin/env bash
# Fuzz hello: run the hello binary with random arguments; every call must exit 0.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

demo="$GT_TOWN/.gtui/demo"
binary=""
for candidate in "$demo/sprocket-nux/repo/build/hello" "$demo/sprocket/repo/build/hello"; do
  if [[ -x "$candidate" ]]; then binary="$candidate"; break; fi
done
if [[ -z "$binary" ]]; then
  echo "no hello build yet: run build-hello first; nothing to fuzz"
  exit 0
fi

echo "fuzzing $binary"
mkdir -p "$demo/sprocket"
chars='abcdefghijklmnopqrstuvwxyz0123456789 %s!-'
crashes=0
for i in $(seq 1 25); do
  length=$((RANDOM % 12 + 1)) arg=""
  for (( j = 0; j < length; j++ )); do arg+="${chars:RANDOM % ${#chars}:1}"; done
  if ! lines="$("$binary" "$arg" | wc -l)" || [[ "${lines// /}" != 1 ]]; then
    echo "case $i: hello '$arg' misbehaved"
    crashes=$((crashes + 1))
  fi
done
echo "25 cases, $crashes problem(s)" | tee "$demo/sprocket/fuzz-hello.txt"
(( crashes == 0 ))
