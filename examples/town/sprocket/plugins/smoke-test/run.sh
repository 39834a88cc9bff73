#!/usr/bin/env bash
# Smoke test: run the hello binary and check its output.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

binary="$GT_TOWN/.gtui/demo/sprocket/repo/build/hello"
out="$GT_TOWN/.gtui/demo/sprocket/smoke-test.txt"
mkdir -p "$(dirname "$out")"

if [[ ! -x "$binary" ]]; then
  echo "no build yet ($binary): run build-hello first; nothing to test" | tee "$out"
  exit 0
fi

passed=0
for who in "" "mayor"; do
  expected="Hello, ${who:-town}!"
  got="$("$binary" ${who:+"$who"})"
  if [[ "$got" != "$expected"* ]]; then
    echo "FAIL: hello ${who:-(no argument)} printed '$got', expected it to start with '$expected'" | tee "$out"
    exit 1
  fi
  echo "ok: hello ${who:-(no argument)} -> $got"
  passed=$((passed + 1))
done
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $passed/2 checks passed" | tee "$out"
