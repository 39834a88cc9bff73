#!/usr/bin/env bash
# Rebuild forge from its repository's main branch and install the binary.
# It builds exactly what main points at (never the repository's work tree),
# so the commit written into the binary is the one `gtui stale` compares with.
set -euo pipefail
: "${GT_TOWN:?GT_TOWN is not set (run me through gtui)}"

base="$GT_TOWN/.gtui/demo/forge"
repo="$base/src"
binary="$base/bin/forge"

if [[ ! -d "$repo/.git" ]]; then
  echo "no forge repository at $repo: run setup-demo.sh (make run does) first" >&2
  exit 1
fi
# --git-dir, not a bare `git -C`: git must never fall back to an enclosing repository.
git_() { git --git-dir="$repo/.git" "$@"; }

commit="$(git_ rev-parse --verify "main^{commit}")"
echo "building forge from main at $commit: $(git_ log -1 --format=%s main)"

work="$(mktemp -d "$base/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
git_ archive main | tar -x -C "$work"
bash "$work/build.sh" "$commit" "$work/forge"

version="$("$work/forge" --version)"
if [[ "$version" != *"$commit"* ]]; then
  echo "the new build reports '$version', not commit $commit: not installing it" >&2
  exit 1
fi

mkdir -p "$(dirname "$binary")"
cp "$work/forge" "$binary.new"
mv -f "$binary.new" "$binary"   # atomic: a concurrent `forge --version` sees the old or the new binary
echo "installed $binary: $version"
echo "gtui stale says: $(gtui stale forge 2>&1 | head -n 1)"
