#!/usr/bin/env bash
# Set up the demo town's state that the plugins expect to find, once:
#
#   $TOWN/.gtui/demo/forge/src   a git repository (branch main) holding the
#                                source of `forge`, the tool that the
#                                rebuild-forge plugin builds and installs.
#
# Usage: bash setup-demo.sh [TOWN]     (TOWN defaults to this script's directory)
#
# Idempotent: a repository that already has a main branch is left as it is, so
# running this before every `make run` never loses commits you made to it.
# Everything lands under $TOWN/.gtui/ (git-ignored). Every git command names
# the demo repository explicitly (--git-dir), so this script can never commit
# to the checkout that contains the town.
set -euo pipefail

town="${1:-$(dirname "${BASH_SOURCE[0]}")}"
if [[ ! -d "$town" ]]; then
  echo "setup-demo.sh: no town directory at $town" >&2
  exit 2
fi
town="$(cd "$town" && pwd)"
repo="$town/.gtui/demo/forge/src"

# Nothing from the caller's environment may point git somewhere else.
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_COMMON_DIR
export GIT_AUTHOR_NAME="gtui demo" GIT_AUTHOR_EMAIL="demo@gtui.invalid"
export GIT_COMMITTER_NAME="gtui demo" GIT_COMMITTER_EMAIL="demo@gtui.invalid"
git_() { git -C "$repo" --git-dir="$repo/.git" --work-tree="$repo" -c commit.gpgsign=false -c core.hooksPath=/dev/null "$@"; }

if [[ -d "$repo/.git" ]] && git_ rev-parse --verify --quiet "refs/heads/main" >/dev/null; then
  echo "forge: $repo is already set up (main at $(git_ rev-parse --short main))"
  exit 0
fi

mkdir -p "$repo"
if [[ ! -d "$repo/.git" ]]; then
  git init -q "$repo"
fi
git_ symbolic-ref HEAD refs/heads/main   # main, whatever init.defaultBranch says

cat > "$repo/forge.sh" <<'FORGE'
#!/usr/bin/env bash
# forge: the demo town's tiny tool. build.sh turns this file into bin/forge,
# writing the commit it was built from in place of the placeholder below.
set -euo pipefail
FORGE_VERSION="1.0"
FORGE_COMMIT="@COMMIT@"

case "${1:-}" in
  --version) echo "forge $FORGE_VERSION ($FORGE_COMMIT)" ;;
  -h|--help) echo "usage: forge [--version] [THING]" ;;
  *)         echo "forged ${1:-a horseshoe}" ;;
esac
FORGE

cat > "$repo/build.sh" <<'BUILD'
#!/usr/bin/env bash
# Build forge: build.sh COMMIT OUTPUT
# "Compiling" a shell tool: check its syntax, then embed the build commit.
set -euo pipefail
commit="$1" output="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash -n "$here/forge.sh"
sed "s/@COMMIT@/$commit/" "$here/forge.sh" > "$output"
chmod 755 "$output"
BUILD

cat > "$repo/README.md" <<'README'
# forge

The demo town's tiny tool. `bash build.sh COMMIT OUTPUT` builds it;
`forge --version` prints the commit it was built from, which is how
`gtui stale forge` tells whether main has moved past the installed binary.
README

git_ add -A
if git_ diff --cached --quiet; then
  echo "forge: nothing to commit in $repo"
else
  git_ commit -q -m "forge 1.0"
fi
echo "forge: created $repo (main at $(git_ rev-parse --short main))"
