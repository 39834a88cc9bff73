#!/usr/bin/env bash
# Condition gate of build-hello: exit 0 (open) when hello.c is newer than the
# last build. The first line printed is the reason gtui shows for the gate.
set -euo pipefail
town="${GT_TOWN:-$(cd ../../.. && pwd)}"
src="../../src/hello.c"
binary="$town/.gtui/demo/sprocket/repo/build/hello"

if [[ ! -f "$src" ]]; then
  echo "no source: $src is missing"
  exit 1
fi
if [[ ! -x "$binary" ]]; then
  echo "never built: no $binary yet"
  exit 0
fi
if [[ "$src" -nt "$binary" ]]; then
  echo "hello.c changed since the last build"
  exit 0
fi
echo "build is up to date"
exit 1
