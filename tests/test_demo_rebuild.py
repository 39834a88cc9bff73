"""The demo town's rebuild-forge plugin end to end: real git, real patrols, real ``gtui stale``.

A copy of ``examples/town`` is set up with ``setup-demo.sh``; then patrols
(``gtui --once --json``) build forge, leave it alone while it is fresh, and
rebuild it after a commit to its repository.  The other demo plugins run in
the same patrols; only the ``rebuild-forge`` entry of each report is checked
(``--once`` may exit 1 because ``check-links`` fails on purpose).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "town"
PLUGIN = "rebuild-forge"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _env() -> dict[str, str]:
    """No GT_* or GIT_* from the caller (nothing may point elsewhere), plain output, a git identity."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GT_", "GIT_"))}
    env.update(NO_COLOR="1", COLUMNS="400",
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@gtui.invalid",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@gtui.invalid")
    return env


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=60)


def _gtui(town: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # cwd is the town, not the checkout: `python -m` puts the cwd first on sys.path.
    return _run([sys.executable, "-m", "gtui", "--town", str(town), *args], town)


def _forge_status(town: Path) -> tuple[int, dict[str, Any]]:
    """Gas Town's convention: ``--quiet`` says it in the exit code (0 stale, 1 fresh, 2 error), ``--json`` in one flat object."""
    code = _gtui(town, "stale", "forge", "--quiet").returncode
    done = _gtui(town, "stale", "forge", "--json")
    status = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert status["stale"] == (code == 0) or status.get("error"), status
    return code, status


def _patrol(town: Path) -> dict[str, Any]:
    """One ``--once --json`` patrol; the rebuild plugin's entry in its report."""
    done = _gtui(town, "--once", "--wait", "--json")
    assert done.returncode in (0, 1), done.stderr  # 1: another demo plugin failed (check-links does, on purpose)
    report = json.loads(done.stdout)
    [entry] = [item for item in report["plugins"] if item["name"] == PLUGIN]
    assert entry["rig"] == "town"
    assert entry["gate"]["type"] == "condition"
    return entry


def _git(repo: Path, *args: str) -> str:
    done = _run(["git", "-C", str(repo), f"--git-dir={repo / '.git'}", "-c", "commit.gpgsign=false",
                 "-c", "core.hooksPath=/dev/null", *args], repo)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _version(binary: Path) -> str:
    done = _run([str(binary), "--version"], binary.parent)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _assert_rebuilt(entry: dict[str, Any]) -> None:
    assert entry["gate"]["open"] is True, entry
    assert entry["gate"]["reason"].startswith("stale: forge is"), entry
    assert entry["dispatched"] is True, entry
    assert entry["run"] is not None and entry["run"]["result"] == "success", entry
    assert entry["run"]["exit_code"] == 0


def _assert_fresh(entry: dict[str, Any]) -> None:
    assert entry["gate"] == {"type": "condition", "open": False, "state": "waiting", "reason": "fresh", "next_open_at": None}, entry
    assert entry["dispatched"] is False
    assert entry["run"] is None


def test_rebuild_forge_builds_once_stays_quiet_while_fresh_and_rebuilds_after_a_commit(tmp_path: Path) -> None:
    town = tmp_path / "town"
    shutil.copytree(DEMO, town, ignore=shutil.ignore_patterns(".gtui"))
    repo = town / ".gtui" / "demo" / "forge" / "src"
    binary = town / ".gtui" / "demo" / "forge" / "bin" / "forge"

    # Before set-up there is no repository: an error, exit 2, and the gate stays closed saying why.
    code, status = _forge_status(town)
    assert code == 2 and "does not exist" in status["error"]
    entry = _patrol(town)
    assert entry["gate"]["open"] is False and entry["run"] is None, entry
    reason = entry["gate"]["reason"]  # gates cap reasons at 200 characters: a deep tmp_path may be cut short
    assert reason.startswith("forge: error: repository ") and f"forge: error: {status['error']}".startswith(reason), reason

    setup = _run(["bash", str(town / "setup-demo.sh"), str(town)], tmp_path)
    assert setup.returncode == 0, setup.stderr
    first = _git(repo, "rev-parse", "main")
    assert _git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    again = _run(["bash", str(town / "setup-demo.sh"), str(town)], tmp_path)  # idempotent
    assert again.returncode == 0 and "already set up" in again.stdout, again.stdout + again.stderr
    assert _git(repo, "rev-parse", "main") == first
    assert _git(repo, "status", "--porcelain") == ""

    # Not built yet: stale (exit 0), safe to rebuild.
    code, status = _forge_status(town)
    assert (code, status["stale"], status["safe_to_rebuild"], status["binary_commit"]) == (0, True, True, "")

    # Patrol 1: the gate opens and the first build succeeds.
    _assert_rebuilt(_patrol(town))
    assert _version(binary) == f"forge 1.0 ({first})"
    code, status = _forge_status(town)
    assert (code, status["stale"], status["binary_commit"], status.get("commits_behind")) == (1, False, first, None)  # 0: left out

    # Patrol 2: fresh, so the gate is closed with reason "fresh" and nothing runs.
    _assert_fresh(_patrol(town))

    # A commit to main makes the binary stale again.
    source = repo / "forge.sh"
    source.write_text(source.read_text().replace('FORGE_VERSION="1.0"', 'FORGE_VERSION="1.1"'))
    _git(repo, "commit", "-q", "-am", "forge 1.1")
    second = _git(repo, "rev-parse", "main")
    assert second != first
    code, status = _forge_status(town)
    assert (code, status["stale"], status["forward"], status["safe_to_rebuild"], status["commits_behind"]) == (0, True, True, True, 1)
    assert status["binary_commit"] == first

    # Patrol 3: rebuilt from the new main; the binary reports the new commit.
    entry = _patrol(town)
    _assert_rebuilt(entry)
    assert entry["gate"]["reason"].startswith("stale: forge is 1 commit(s) behind")
    assert _version(binary) == f"forge 1.1 ({second})"
    assert f"installed {binary}" in Path(entry["run"]["log"]).read_text()
    code, status = _forge_status(town)
    assert (code, status["binary_commit"]) == (1, second)

    # Patrol 4: fresh again.
    _assert_fresh(_patrol(town))
    assert _forge_status(town)[0] == 1
