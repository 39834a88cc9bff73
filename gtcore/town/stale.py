"""Stale binaries: has a build branch of a tool's repository moved past the commit it was built from?

For each ``[[stale.binaries]]`` entry of ``gtui.toml`` the binary is asked
for its build commit (``commit_command``, default ``BINARY --version``; the
first 7-40 hex digit word of its output), and the repository for the build
branch to compare it with, as Gas Town's ``gt stale`` (at 649b832b) decides:

- the repository's worktree is on a build branch (``main``, ``master``,
  ``carry/*``): that branch (``on_main_branch``, ``compare_ref``);
- else the freshest of the build refs that contain the binary's commit (a
  single ``carry/*`` branch, local or of ``upstream``/``origin``, then
  ``upstream/main``, ``upstream/master``, ``origin/main``,
  ``origin/master``, ``main``, ``master``); none: the check is ``skipped``,
  and so is one whose binary commit the repository does not have.

Then ``stale`` (the build ref is elsewhere, and not only by ``.beads/``
changes), ``forward`` (it descends from the binary's commit),
``commits_behind``, and ``safe_to_rebuild`` (stale, forward, and on a build
branch).  A binary that does not exist yet is stale, and safe to build when
the worktree is on a build branch.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from gtcore.core.records import TYPE_CHECKING
from gtcore.dogs import processes
from gtcore.town.layout import Town
from gtcore.town.settings import StaleBinary

if TYPE_CHECKING:
    from typing import Any

_HEX = re.compile(r"\b[0-9a-f]{7,40}\b")
COMMAND_TIMEOUT = 10.0


@dataclass
class BinaryStatus:
    name: str
    stale: bool = False
    forward: bool = False
    on_main_branch: bool = False
    safe_to_rebuild: bool = False
    binary_commit: str | None = None
    repo_commit: str | None = None
    compare_ref: str | None = None
    commits_behind: int | None = None
    skipped: bool = False
    skip_reason: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def gastown_json(self) -> dict[str, Any]:
        """The one flat object ``gt stale --json`` prints, in its key order (the optional keys only when set; on an
        error, nothing else is said)."""
        if self.error:
            return {**BinaryStatus("").gastown_json(), "error": self.error}
        out: dict[str, Any] = {"stale": self.stale, "forward": self.forward, "on_main_branch": self.on_main_branch,
                               "safe_to_rebuild": self.safe_to_rebuild, "binary_commit": self.binary_commit or "",
                               "repo_commit": self.repo_commit or ""}
        optional = {"compare_ref": self.compare_ref, "commits_behind": self.commits_behind, "skipped": self.skipped,
                    "skip_reason": self.skip_reason}
        return {**out, **{key: value for key, value in optional.items() if value}}


class _Problem(Exception):
    pass


def _start(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; a missing, hung or unrunnable one is a :class:`_Problem`, never a crash."""
    try:
        return processes.run_captured(argv, cwd, COMMAND_TIMEOUT)
    except FileNotFoundError:
        raise _Problem(f"{argv[0]}: not found") from None
    except subprocess.TimeoutExpired:
        raise _Problem(f"{' '.join(argv)}: timed out after {COMMAND_TIMEOUT:g}s") from None
    except OSError as exc:
        raise _Problem(f"{argv[0]}: {exc.strerror or exc}") from None


def _run(argv: list[str], cwd: Path) -> str:
    done = _start(argv, cwd)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise _Problem(f"{' '.join(argv)} exited {done.returncode}" + (f": {detail[0]}" if detail else ""))
    return done.stdout


def _git(repo: Path, *args: str) -> str:
    return _run(["git", "-C", str(repo), *args], repo).strip()


def _is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return _start(["git", "-C", str(repo), "merge-base", "--is-ancestor", older, newer], repo).returncode == 0


BUILD_BRANCHES = ("main", "master")  # and carry/*: the branches Gas Town rebuilds from
NOT_IN_REPO = "binary commit not found in source repo; cannot compare staleness"
NO_BUILD_REF = "source worktree not on a build branch and no build-branch ref found to compare against"


def is_build_branch(branch: str) -> bool:
    return branch in BUILD_BRANCHES or branch.startswith("carry/")


def check_binary(entry: StaleBinary, town_root: Path) -> BinaryStatus:
    """Compare one binary against its repository; problems land in ``error``."""
    status = BinaryStatus(entry.name)
    try:
        _check(entry, town_root, status)
    except _Problem as problem:
        status.error = str(problem)
    return status


def _check(entry: StaleBinary, town_root: Path, status: BinaryStatus) -> None:
    repo = town_root / entry.repo
    binary = town_root / entry.binary
    if not (repo / ".git").exists() and not repo.joinpath("HEAD").is_file():
        raise _Problem(f"repository {repo} does not exist or is not a git repository")
    if not binary.exists():  # not built yet: stale, and safe to build from a build branch
        branch = _branch(repo)
        status.repo_commit, status.compare_ref = _git(repo, "rev-parse", "HEAD"), branch or "HEAD"
        status.on_main_branch = status.safe_to_rebuild = is_build_branch(branch)
        status.stale = True
        return
    built = _build_commit(entry, town_root, binary)
    status.binary_commit = _resolve(repo, built)
    if status.binary_commit is None:  # skipped before the branch is read, as Gas Town's: not on a build branch, as far as it says
        status.binary_commit, status.skipped, status.skip_reason = built, True, NOT_IN_REPO
        return
    branch = _branch(repo)
    status.on_main_branch = is_build_branch(branch)
    if status.on_main_branch:
        status.compare_ref, status.repo_commit = branch, _git(repo, "rev-parse", "HEAD")
    else:
        found = _build_ref(repo, status.binary_commit)
        if found is None:
            status.skipped, status.skip_reason = True, NO_BUILD_REF
            return
        status.compare_ref, status.repo_commit = found
    _compare(repo, status, status.binary_commit, status.repo_commit)


def _branch(repo: Path) -> str:
    """The branch the repository's worktree is on ("" when detached)."""
    done = _start(["git", "-C", str(repo), "symbolic-ref", "--short", "HEAD"], repo)
    return done.stdout.strip() if done.returncode == 0 else ""


def _build_commit(entry: StaleBinary, town_root: Path, binary: Path) -> str:
    command = _commit_command(entry, town_root, binary)
    match = _HEX.search(_run(command, town_root).lower())
    if match is None:
        raise _Problem(f"{' '.join(command)} printed no build commit (7-40 hex digits)")
    return match.group(0)


def _resolve(repo: Path, rev: str) -> str | None:
    """The full commit ``rev`` names in ``repo`` (None: it has no such commit)."""
    done = _start(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], repo)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _build_ref(repo: Path, built: str) -> tuple[str, str] | None:
    """The build ref to compare with, as (name, commit): of those containing ``built``, one no other one is ahead of,
    the first in Gas Town's order."""
    usable = []
    for ref, name in _candidates(repo):
        commit = _resolve(repo, ref)
        if commit is not None and _is_ancestor(repo, built, commit):
            usable.append((name, commit))
    frontier = [(name, commit) for name, commit in usable
                if not any(other != commit and _is_ancestor(repo, commit, other) for _, other in usable)]
    return frontier[0] if frontier else None


def _candidates(repo: Path) -> list[tuple[str, str]]:
    """Gas Town's build refs, in its order, fully qualified (a tag never shadows a branch), with the names it shows."""
    found = []
    for pattern in ("refs/heads/carry/", "refs/remotes/upstream/carry/", "refs/remotes/origin/carry/"):
        refs = _git(repo, "for-each-ref", "--format=%(refname)", pattern).split()
        if len(refs) == 1:  # more than one is ambiguous: none of them
            found.append((refs[0], refs[0].removeprefix("refs/heads/").removeprefix("refs/remotes/")))
    for remote in ("upstream", "origin"):
        found += [(f"refs/remotes/{remote}/{name}", f"{remote}/{name}") for name in BUILD_BRANCHES]
    return found + [(f"refs/heads/{name}", name) for name in BUILD_BRANCHES]


def _compare(repo: Path, status: BinaryStatus, built: str, ref: str) -> None:
    """Stale unless the build ref is the binary's commit, or moved only by ``.beads/`` changes (bd's backup commits)."""
    if built.startswith(ref) or ref.startswith(built):
        return
    changed = _start(["git", "-C", str(repo), "diff", "--name-only", f"{built}..{ref}", "--", ".", ":!.beads"], repo)
    if changed.returncode == 0 and not changed.stdout.strip():
        return
    status.stale = True
    status.forward = _is_ancestor(repo, built, ref)
    counted = _start(["git", "-C", str(repo), "rev-list", "--count", f"{built}..{ref}"], repo)
    status.commits_behind = int(counted.stdout.strip()) if counted.returncode == 0 and counted.stdout.strip().isdigit() else 0
    status.safe_to_rebuild = status.forward and status.on_main_branch


def _commit_command(entry: StaleBinary, town_root: Path, binary: Path) -> list[str]:
    """The command that prints the build commit, run in the town root.

    Its first word is read as a shell would: with a slash it is a path (relative
    ones from the town root), a bare word (``cat``, ``git``) is found on PATH.
    """
    if not entry.commit_command:
        return [str(binary), "--version"]
    program, *arguments = entry.commit_command
    return [str(town_root / program) if "/" in program else program, *arguments]


def pick_binary(entries: tuple[StaleBinary, ...], town: Town, name: str | None = None) -> BinaryStatus:
    """The one binary ``gt stale`` asks about: ``name``, else the entry named ``gt``, else the first.

    A missing entry is an answer with an ``error``, as Gas Town's is: with
    ``--json`` the plugin reads it, with ``--quiet`` it is exit 2.
    """
    where = town.settings_dir / "gtui.toml"
    if not entries:
        return BinaryStatus(name or "gt", error=f"no [[stale.binaries]] in {where}: nothing to compare")
    wanted = name or ("gt" if any(entry.name == "gt" for entry in entries) else entries[0].name)
    entry = next((entry for entry in entries if entry.name == wanted), None)
    if entry is None:
        return BinaryStatus(wanted, error=f"no binary named {wanted!r} in [[stale.binaries]] of {where}")
    return check_binary(entry, town.root)
