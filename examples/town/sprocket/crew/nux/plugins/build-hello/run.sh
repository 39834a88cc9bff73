#!/usr/bin/env bash
# Build hello (nux's crew clone): same as the rig's, into its own demo repo.
# Everything happens under $GT_TOWN/.gtui/demo (git-ignored); GIT_DIR is pinned
# to the demo repo so this script can never touch any other repository.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

src_dir="$(cd ../../src && pwd)"
repo="$GT_TOWN/.gtui/demo/sprocket-nux/repo"

export GIT_DIR="$repo/.git" GIT_WORK_TREE="$repo"
export GIT_AUTHOR_NAME="gtui demo" GIT_AUTHOR_EMAIL="demo@gtui.invalid"
export GIT_COMMITTER_NAME="gtui demo" GIT_COMMITTER_EMAIL="demo@gtui.invalid"
git_() { git -c commit.gpgsign=false -c core.hooksPath=/dev/null "$@"; }

if [[ ! -d "$repo/.git" ]]; then
  mkdir -p "$repo"
  git_ init -q "$repo"
  printf 'build/\n' > "$repo/.gitignore"
  echo "created git repository $repo"
fi

cp "$src_dir"/*.c "$repo/"
git_ add -A
if git_ diff --cached --quiet; then
  echo "source unchanged: still at commit $(git_ rev-parse --short HEAD)"
else
  git_ commit -q -m "build-hello (nux): import source (run ${GT_RUN_ID:-?})"
  echo "committed $(git_ rev-parse --short HEAD): $(git_ log -1 --format=%s)"
fi

mkdir -p "$repo/build"
if command -v cc >/dev/null 2>&1; then
  cc -O2 -Wall -o "$repo/build/hello" "$repo/hello.c"
  echo "compiled $repo/build/hello with $(cc --version | head -n 1)"
else
  printf '#!/bin/sh\necho "Hello, ${1:-town}! (shell stand-in: no C compiler was found)"\n' > "$repo/build/hello"
  chmod +x "$repo/build/hello"
  echo "no C compiler on PATH: wrote a shell stand-in at $repo/build/hello"
fi
echo "build/hello says: $("$repo/build/hello")"
echo "build/hello --shout says: $("$repo/build/hello" --shout)"
