"""``gtui stale`` against real git repositories made in tmp_path.

The "binary" is a small bash script whose ``--version`` prints ``tool 1.0 (<commit sha>)``; the
repository is a real one with real commits (each changes a file: commits that change nothing, or
only ``.beads/``, do not make a binary stale in Gas Town).  The command follows Gas Town's ``gt
stale`` at 649b832b: it compares with a build branch (``main``, ``master``, ``carry/*``, or the
freshest build ref holding the binary's commit); ``--json`` prints one flat object and exits 0 (an
error too, in its ``error`` field; a check it cannot make says ``skipped``); ``--quiet`` prints
nothing and exits 0 stale, 1 fresh, 2 skipped or error.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gtui.cli import main

ALWAYS = ["stale", "forward", "on_main_branch", "safe_to_rebuild", "binary_commit", "repo_commit"]  # Gas Town's order
WHEN_SET = ["compare_ref", "commits_behind", "skipped", "skip_reason", "error"]  # left out when 0 or empty, in this order
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


# -- repositories, binaries, settings -----------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env={**os.environ, **GIT_ENV}, check=True)
    return done.stdout.strip()


def commit(repo: Path, count: int = 1, where: str = "work.txt") -> str:
    """Make ``count`` commits on the checked-out branch, each changing ``where``; returns the new HEAD."""
    target = repo / where
    target.parent.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        target.write_text(f"{target.read_text() if target.exists() else ''}change {number}\n", encoding="utf-8")
        git(repo, "add", where)
        git(repo, "commit", "-q", "-m", f"change {number} of {where}")
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, branch: str = "main", commits: int = 1) -> str:
    """``git init -b BRANCH`` with ``commits`` commits; returns HEAD."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", branch)
    return commit(path, commits)


def make_tool(path: Path, printed: str) -> Path:
    """A bash "binary" whose ``--version`` prints ``tool 1.0 (PRINTED)``; anything else is a usage error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/bash\n"
        f'if [ "$1" = --version ]; then echo "tool 1.0 ({printed})"; exit 0; fi\n'
        'echo "usage: tool --version" >&2\nexit 64\n',
        encoding="utf-8",
    )
    path.chmod(0o755)
    return path


def configure(town: Path, *entries: dict[str, Any]) -> None:
    """``settings/gtui.toml`` with one ``[[stale.binaries]]`` table per entry."""
    text = "".join("[[stale.binaries]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in entry.items()) for entry in entries)
    (town / "settings").mkdir(exist_ok=True)
    (town / "settings" / "gtui.toml").write_text(text, encoding="utf-8")


def tool_town(town: Path, *, branch: str = "main") -> str:
    """One binary ``tool`` (bin/tool) built from src/tool's HEAD; returns that commit."""
    head = make_repo(town / "src" / "tool", branch)
    make_tool(town / "bin" / "tool", head)
    configure(town, {"name": "tool", "binary": "bin/tool", "repo": "src/tool"})
    return head


def cli(capsys: pytest.CaptureFixture[str], town: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--town", str(town), *args])
    out, err = capsys.readouterr()
    return code, out, err


def stale_json(capsys: pytest.CaptureFixture[str], town: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """``gtui stale ARGS --quiet`` for the verdict, ``--json`` for Gas Town's flat object (whose keys are checked)."""
    code, out, err = cli(capsys, town, "stale", *args, "--quiet")
    assert (out, err) == ("", "")
    json_code, out, _ = cli(capsys, town, "stale", *args, "--json")
    status = json.loads(out)
    assert json_code == 0, status  # --json exits 0 whatever it says
    assert list(status) == ALWAYS + [key for key in WHEN_SET if key in status], status
    assert all(status[key] for key in WHEN_SET if key in status), status
    return code, status


# -- fresh, behind, and the build branch compared with ---------------------------------------------------


def test_a_binary_built_from_mains_head_is_fresh(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = tool_town(town)

    code, status = stale_json(capsys, town)

    assert code == 1
    assert status == {"stale": False, "forward": False, "on_main_branch": True, "safe_to_rebuild": False,
                      "binary_commit": head, "repo_commit": head, "compare_ref": "main"}


def test_a_binary_n_commits_behind_main_is_stale_and_safe_to_rebuild(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = tool_town(town)
    head = commit(town / "src" / "tool", 3)

    code, status = stale_json(capsys, town)

    assert code == 0
    assert status == {"stale": True, "forward": True, "on_main_branch": True, "safe_to_rebuild": True,
                      "binary_commit": built, "repo_commit": head, "compare_ref": "main", "commits_behind": 3}

    code, out, _ = cli(capsys, town, "stale")  # for people
    assert code == 0
    assert "tool is 3 commit(s) behind main; safe to rebuild" in out


def test_commits_that_only_touch_beads_leave_the_binary_fresh(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Gas Town's GH#2596: bd's backup commits change only .beads/, which no binary is built from."""
    built = tool_town(town)
    head = commit(town / "src" / "tool", 2, ".beads/issues.jsonl")

    code, status = stale_json(capsys, town)

    assert code == 1
    assert (status["stale"], status["binary_commit"], status["repo_commit"]) == (False, built, head)
    commit(town / "src" / "tool", 1, "cmd/main.go")
    assert stale_json(capsys, town)[1]["commits_behind"] == 3


def test_a_short_sha_in_the_version_is_resolved_to_the_full_commit(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = tool_town(town)
    make_tool(town / "bin" / "tool", built[:7])
    commit(town / "src" / "tool")

    code, binary = stale_json(capsys, town)

    assert code == 0
    assert (binary["binary_commit"], binary["commits_behind"], binary["safe_to_rebuild"]) == (built, 1, True)


def test_a_binary_built_from_a_diverged_branch_is_stale_but_not_safe_to_rebuild(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool_town(town)
    repo = town / "src" / "tool"
    git(repo, "checkout", "-q", "-b", "feature")
    feature = commit(repo, 2, "feature.txt")
    git(repo, "checkout", "-q", "main")
    head = commit(repo)  # main moved on too: the two have diverged
    make_tool(town / "bin" / "tool", feature)

    code, binary = stale_json(capsys, town)

    assert code == 0
    assert (binary["stale"], binary["compare_ref"]) == (True, "main")
    assert (binary["on_main_branch"], binary["forward"], binary["safe_to_rebuild"]) == (True, False, False)
    assert (binary["binary_commit"], binary["repo_commit"], binary.get("error")) == (feature, head, None)

    code, out, _ = cli(capsys, town, "stale")
    assert code == 0 and "NOT safe to rebuild (main does not descend" in out


def test_a_worktree_on_a_feature_branch_is_compared_with_the_build_branch_not_its_head(
        town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Gas Town's GH#4034: the mayor's clone sits on feature branches; staleness is only meant against a build branch."""
    built = tool_town(town)
    repo = town / "src" / "tool"
    main = commit(repo, 2)
    git(repo, "checkout", "-q", "-b", "polecat/nux")
    commit(repo, 5, "wip.txt")  # unmerged feature work is not what the binary is behind

    code, binary = stale_json(capsys, town)

    assert code == 0
    assert binary == {"stale": True, "forward": True, "on_main_branch": False, "safe_to_rebuild": False,
                      "binary_commit": built, "repo_commit": main, "compare_ref": "main", "commits_behind": 2}


def test_the_freshest_build_ref_holding_the_binary_wins_remote_ones_included(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = tool_town(town)
    repo = town / "src" / "tool"
    ahead = commit(repo, 3)
    git(repo, "update-ref", "refs/remotes/origin/main", ahead)  # origin/main ahead of the local main
    git(repo, "reset", "-q", "--hard", built)
    git(repo, "checkout", "-q", "-b", "feature")

    code, binary = stale_json(capsys, town)

    assert code == 0
    assert (binary["compare_ref"], binary["repo_commit"], binary["commits_behind"]) == ("origin/main", ahead, 3)
    assert (binary["on_main_branch"], binary["safe_to_rebuild"]) == (False, False)


def test_a_carry_branch_is_a_build_branch(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = tool_town(town)
    repo = town / "src" / "tool"
    git(repo, "checkout", "-q", "-b", "carry/operational")
    head = commit(repo, 2)

    code, binary = stale_json(capsys, town)
    assert code == 0
    assert (binary["on_main_branch"], binary["compare_ref"], binary["safe_to_rebuild"]) == (True, "carry/operational", True)
    assert (binary["binary_commit"], binary["repo_commit"]) == (built, head)

    git(repo, "checkout", "-q", "-b", "feature")  # off the carry branch: it is the one build ref holding the binary and ahead
    code, binary = stale_json(capsys, town)
    assert (code, binary["compare_ref"], binary["on_main_branch"]) == (0, "carry/operational", False)


def test_no_build_ref_holding_the_binarys_commit_skips_the_check(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool_town(town)
    repo = town / "src" / "tool"
    git(repo, "checkout", "-q", "-b", "feature")
    feature = commit(repo, 1, "feature.txt")
    make_tool(town / "bin" / "tool", feature)  # built from the feature branch, which no build ref holds

    code, binary = stale_json(capsys, town)

    assert code == 2  # -q: skipped is "undetermined"
    assert binary == {"stale": False, "forward": False, "on_main_branch": False, "safe_to_rebuild": False,
                      "binary_commit": feature, "repo_commit": "", "skipped": True,
                      "skip_reason": "source worktree not on a build branch and no build-branch ref found to compare against"}
    code, out, _ = cli(capsys, town, "stale")
    assert code == 0 and "skipped" in out


def test_master_as_the_main_branch(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = tool_town(town, branch="master")
    code, binary = stale_json(capsys, town)
    assert (code, binary["repo_commit"], binary["stale"], binary["compare_ref"]) == (1, built, False, "master")

    head = commit(town / "src" / "tool", 2)
    code, binary = stale_json(capsys, town)
    assert code == 0
    assert (binary["repo_commit"], binary["commits_behind"], binary["forward"], binary["safe_to_rebuild"]) == (head, 2, True, True)


def test_a_bare_repository_works_too(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = tool_town(town)
    subprocess.run(["git", "clone", "-q", "--bare", str(town / "src" / "tool"), str(town / "src" / "tool.git")],
                   check=True, capture_output=True, env={**os.environ, **GIT_ENV})
    configure(town, {"name": "tool", "binary": "bin/tool", "repo": "src/tool.git"})

    code, binary = stale_json(capsys, town)

    assert (code, binary["repo_commit"], binary.get("error")) == (1, built, None)


# -- missing things, skips and errors ------------------------------------------------------------------


def test_a_missing_binary_is_stale_and_safe_to_build_from_a_build_branch(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = tool_town(town)
    (town / "bin" / "tool").unlink()

    code, binary = stale_json(capsys, town)

    assert code == 0
    assert binary == {"stale": True, "forward": False, "on_main_branch": True, "safe_to_rebuild": True,
                      "binary_commit": "", "repo_commit": head, "compare_ref": "main"}
    git(town / "src" / "tool", "checkout", "-q", "-b", "feature")
    assert stale_json(capsys, town)[1]["safe_to_rebuild"] is False


def test_a_missing_repository_is_an_error(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tool(town / "bin" / "tool", "a" * 40)
    configure(town, {"name": "tool", "binary": "bin/tool", "repo": "src/nowhere"})

    code, binary = stale_json(capsys, town)

    assert code == 2 and binary["stale"] is False
    assert "src/nowhere" in binary["error"] and "does not exist" in binary["error"]

    (town / "src" / "plain").mkdir(parents=True)  # a directory, but not a repository
    configure(town, {"name": "tool", "binary": "bin/tool", "repo": "src/plain"})
    code, binary = stale_json(capsys, town)
    assert code == 2 and "not a git repository" in binary["error"]


def test_a_binary_that_prints_no_commit_is_an_error(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool_town(town)
    make_tool(town / "bin" / "tool", "dev build")

    code, binary = stale_json(capsys, town)

    assert code == 2
    assert "printed no build commit" in binary["error"]
    assert binary["binary_commit"] == ""


def test_a_commit_the_repository_does_not_have_skips_the_check(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool_town(town)
    unknown = "0123456789abcdef0123456789abcdef01234567"
    make_tool(town / "bin" / "tool", unknown)

    code, binary = stale_json(capsys, town)

    assert code == 2
    assert (binary["skipped"], binary["binary_commit"], binary["repo_commit"]) == (True, unknown, "")
    assert binary["skip_reason"] == "binary commit not found in source repo; cannot compare staleness"
    assert binary["on_main_branch"] is False  # Gas Town skips before it reads the branch, though the clone is on main


def test_a_binary_whose_version_command_fails_is_an_error(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool_town(town)
    configure(town, {"name": "tool", "binary": "bin/tool", "repo": "src/tool", "commit_command": ["bin/tool", "--what"]})

    code, binary = stale_json(capsys, town)

    assert code == 2
    assert "exited 64" in binary["error"] and "usage: tool --version" in binary["error"]


def test_without_git_on_the_path_each_binary_reports_an_error(
    town: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tool_town(town)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    code, binary = stale_json(capsys, town)

    assert code == 2
    assert "git" in binary["error"] and "not found" in binary["error"]


def test_no_stale_binaries_configured_is_an_error(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, binary = stale_json(capsys, town)
    assert code == 2 and "no [[stale.binaries]]" in binary["error"]
    code, out, _ = cli(capsys, town, "stale")
    assert code == 2 and "no [[stale.binaries]]" in out


# -- the command line ------------------------------------------------------------------------------------


def test_quiet_prints_nothing_and_the_exit_status_says_it(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool_town(town)
    assert cli(capsys, town, "stale", "--quiet") == (1, "", "")
    commit(town / "src" / "tool")
    assert cli(capsys, town, "stale", "--quiet") == (0, "", "")
    assert cli(capsys, town, "stale", "--quiet", "--json") == (0, "", "")


def test_a_name_chooses_one_binary(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh_head = make_repo(town / "src" / "fresh")
    old = make_repo(town / "src" / "old")
    commit(town / "src" / "old", 2)
    make_tool(town / "bin" / "fresh", fresh_head)
    make_tool(town / "bin" / "old", old)
    configure(town, {"name": "fresh", "binary": "bin/fresh", "repo": "src/fresh"}, {"name": "old", "binary": "bin/old", "repo": "src/old"})

    code, binary = stale_json(capsys, town)  # no name: the first entry (or the one named gt)
    assert (code, binary["stale"], binary["repo_commit"]) == (1, False, fresh_head)

    code, binary = stale_json(capsys, town, "fresh")
    assert (code, binary["stale"], binary["repo_commit"]) == (1, False, fresh_head)

    code, binary = stale_json(capsys, town, "old")
    assert (code, binary["stale"], binary["binary_commit"], binary["commits_behind"]) == (0, True, old, 2)

    code, binary = stale_json(capsys, town, "nope")
    assert code == 2 and "no binary named 'nope'" in binary["error"]

    configure(town, {"name": "old", "binary": "bin/old", "repo": "src/old"}, {"name": "gt", "binary": "bin/fresh", "repo": "src/fresh"})
    assert stale_json(capsys, town)[1]["repo_commit"] == fresh_head  # Gas Town's gt stale asks about gt


def test_a_custom_commit_command(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = tool_town(town)
    head = commit(town / "src" / "tool")
    make_tool(town / "bin" / "tool", "no commit here")  # --version is useless; the commit comes from elsewhere
    info = town / "bin" / "build-info"
    info.write_text(f"#!/bin/bash\necho \"built from {built} on $1\"\n", encoding="utf-8")
    info.chmod(0o755)
    (town / "build").mkdir()
    (town / "build" / "COMMIT").write_text(f"{head}\n", encoding="utf-8")

    # a path relative to the town
    configure(town, {"name": "tool", "binary": "bin/tool", "repo": "src/tool", "commit_command": ["bin/build-info", "tuesday"]})
    code, binary = stale_json(capsys, town)
    assert (code, binary["binary_commit"], binary["commits_behind"]) == (0, built, 1)

    # an absolute path
    configure(town, {"name": "tool", "binary": "bin/tool", "repo": "src/tool", "commit_command": [str(info)]})
    code, binary = stale_json(capsys, town)
    assert (code, binary["binary_commit"]) == (0, built)

    # a bare command word is found on PATH, like a shell would; its arguments are relative to the town
    configure(town, {"name": "tool", "binary": "bin/tool", "repo": "src/tool", "commit_command": ["cat", "build/COMMIT"]})
    code, binary = stale_json(capsys, town)
    assert (code, binary["binary_commit"], binary.get("error")) == (1, head, None)
