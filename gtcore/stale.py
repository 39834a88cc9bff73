"""Stale binaries: has the source of a tool moved past the commit it was built from?

For each ``[[stale.binaries]]`` entry of ``gtui.toml`` the binary is asked
for its build commit (``commit_command``, default ``BINARY --version``; the
first 7-40 hex digit word of its output), and the repository is asked where
its main branch is.  Fields follow Gas Town's ``gt stale``:

- ``stale``: the main branch is not at the binary's commit;
- ``forward``: the main branch moved forward from that commit (it is an ancestor);
- ``on_main_branch``: the binary's commit is on the main branch;
- ``safe_to_rebuild``: stale, and rebuilding from main loses nothing (the
  binary was built from main, or does not exist yet);
- ``commits_behind``: how many commits main has past the binary's commit.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from gtcore import processes
from gtcore.records import TYPE_CHECKING
from gtcore.settings import StaleBinary
from gtcore.town import Town

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
    commits_behind: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def gastown_json(self) -> dict[str, Any]:
        """The one flat object ``gt stale --json`` prints, in its key order (``commits_behind`` and ``error`` only when set)."""
        out: dict[str, Any] = {"stale": self.stale, "forward": self.forward, "on_main_branch": self.on_main_branch,
                               "safe_to_rebuild": self.safe_to_rebuild, "binary_commit": self.binary_commit or "",
                               "repo_commit": self.repo_commit or ""}
        if self.commits_behind:
            out["commits_behind"] = self.commits_behind
        if self.error:
            out["error"] = self.error
        return out


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


def main_branch(repo: Path) -> str:
    """``main``, else ``master``, else whatever HEAD is."""
    for name in ("main", "master"):
        if _start(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"refs/heads/{name}"], repo).returncode == 0:
            return name
    return "HEAD"


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
    branch = main_branch(repo)
    status.repo_commit = _git(repo, "rev-parse", branch)
    if not binary.exists():
        status.stale = status.safe_to_rebuild = True
        return
    command = _commit_command(entry, town_root, binary)
    output = _run(command, town_root)
    match = _HEX.search(output.lower())
    if match is None:
        raise _Problem(f"{' '.join(command)} printed no build commit (7-40 hex digits)")
    try:
        status.binary_commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{match.group(0)}^{{commit}}")
    except _Problem:
        raise _Problem(f"binary {entry.name} was built from {match.group(0)}, which {repo} does not have") from None
    status.on_main_branch = status.forward = _is_ancestor(repo, status.binary_commit, status.repo_commit)
    status.commits_behind = int(_git(repo, "rev-list", "--count", f"{status.binary_commit}..{status.repo_commit}"))
    status.stale = status.binary_commit != status.repo_commit
    status.forward = status.stale and status.forward
    status.safe_to_rebuild = status.stale and status.on_main_branch


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
