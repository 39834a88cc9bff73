"""Condition checks run as real child processes: output head, exit codes, timeouts, process groups, parallelism."""

from __future__ import annotations

import time
from pathlib import Path

from gtcore.dogs import processes
from gtcore.gates.conditions import _OUTPUT_LIMIT, run_check, run_checks
from gtcore.gates.decisions import CheckResult, GateFacts
from gtcore.gates.rules import evaluate
from gtcore.plugins.spec import Plugin, parse_plugin


def condition_plugin(root: Path, check: str, name: str = "probe", timeout: str = "30s", rig: str = "town") -> Plugin:
    """Write a real condition plugin under ``root`` and parse it, so the check runs in its directory."""
    directory = root / name
    directory.mkdir(parents=True)
    check_toml = check.replace("\\", "\\\\").replace('"', '\\"')
    path = directory / "plugin.md"
    path.write_text(
        f'+++\nname = "{name}"\n[gate]\ntype = "condition"\ncheck = "{check_toml}"\ncheck_timeout = "{timeout}"\n+++\nLook around.\n',
        encoding="utf-8",
    )
    plugin = parse_plugin(path, rig=rig)
    assert isinstance(plugin, Plugin), plugin
    assert plugin.gate.check == check
    return plugin


def process_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat (``Z`` for a zombie), or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()[0]


def wait_dead(pid: int, within: float = 2.0) -> str | None:
    """SIGKILL is asynchronous: give the kernel a moment, then report the final state."""
    deadline = time.monotonic() + within
    state = process_state(pid)
    while state not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.02)
        state = process_state(pid)
    return state


def test_exit_zero_keeps_the_first_output_line(tmp_path: Path) -> None:
    result = run_check(condition_plugin(tmp_path, "printf 'fresh\\nmore\\n'"), tmp_path)
    assert result == CheckResult(0, "fresh")


def test_first_line_skips_leading_blank_lines_and_trims(tmp_path: Path) -> None:
    result = run_check(condition_plugin(tmp_path, "printf '\\n\\n   3 stale branches  \\nrest\\n'"), tmp_path)
    assert result == CheckResult(0, "3 stale branches")


def test_nonzero_exit_code_is_reported(tmp_path: Path) -> None:
    result = run_check(condition_plugin(tmp_path, "exit 3"), tmp_path)
    assert result == CheckResult(3, "")
    assert evaluate(condition_plugin(tmp_path, "exit 3", name="again"), GateFacts(), {}, 0.0, result).reason == "check exited 3"


def test_stderr_counts_as_output(tmp_path: Path) -> None:
    result = run_check(condition_plugin(tmp_path, "echo 'nothing new' >&2; exit 1"), tmp_path)
    assert result == CheckResult(1, "nothing new")


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    plugin = condition_plugin(tmp_path, "echo $$ > group.pid; sleep 30 & echo $! > child.pid; sleep 10", timeout="1s")
    started = time.monotonic()
    result = run_check(plugin, tmp_path)
    elapsed = time.monotonic() - started
    assert result == CheckResult(None, timed_out=True)
    assert elapsed < 3.0
    group = int((plugin.directory / "group.pid").read_text())
    grandchild = int((plugin.directory / "child.pid").read_text())
    assert wait_dead(grandchild) in (None, "Z")
    assert not processes.group_alive(group)
    decision = evaluate(plugin, GateFacts(), {}, 0.0, result)
    assert (decision.open, decision.reason) == (False, "check timed out after 1s")


def test_background_children_of_a_passing_check_are_killed_too(tmp_path: Path) -> None:
    # The grandchild holds the output pipe open; the check must still return promptly.
    plugin = condition_plugin(tmp_path, "sleep 30 & echo $! > child.pid; echo ready", timeout="5s")
    started = time.monotonic()
    result = run_check(plugin, tmp_path)
    assert time.monotonic() - started < 3.0
    assert result == CheckResult(0, "ready")
    assert wait_dead(int((plugin.directory / "child.pid").read_text())) in (None, "Z")


def test_check_runs_in_the_plugin_directory_with_gas_town_environment(tmp_path: Path) -> None:
    town = tmp_path / "town"
    plugin = condition_plugin(town / "plugins", 'echo "$(pwd -P)|$GT_TOWN|$GT_PLUGIN|$GT_RIG"', name="env-probe")
    result = run_check(plugin, town)
    assert result.exit_code == 0
    assert result.first_line == f"{plugin.directory.resolve()}|{town}|env-probe|"
    rig_plugin = condition_plugin(town / "alpha" / "plugins", 'echo "$GT_RIG"', name="rig-probe", rig="alpha")
    assert run_check(rig_plugin, town).first_line == "alpha"


def test_relative_paths_in_a_check_resolve_against_the_plugin_directory(tmp_path: Path) -> None:
    plugin = condition_plugin(tmp_path, "test -f marker && cat marker")
    assert run_check(plugin, tmp_path).exit_code == 1
    (plugin.directory / "marker").write_text("marker found\n")
    assert run_check(plugin, tmp_path) == CheckResult(0, "marker found")


def test_a_check_that_cannot_start_is_an_error_not_an_exception(tmp_path: Path) -> None:
    plugin = condition_plugin(tmp_path, "true")
    (plugin.directory / "plugin.md").unlink()
    plugin.directory.rmdir()
    result = run_check(plugin, tmp_path)
    assert result.exit_code is None and result.error
    assert evaluate(plugin, GateFacts(), {}, 0.0, result).reason.startswith("check could not run: ")


def test_checks_run_in_parallel(tmp_path: Path) -> None:
    plugins = [condition_plugin(tmp_path, f"sleep 1; echo done {n}", name=f"slow-{n}") for n in range(4)]
    started = time.monotonic()
    results = run_checks(plugins, tmp_path)
    elapsed = time.monotonic() - started
    assert results == {f"slow-{n}": CheckResult(0, f"done {n}") for n in range(4)}
    assert elapsed < 2.5


def test_run_checks_of_nothing_is_empty(tmp_path: Path) -> None:
    assert run_checks([], tmp_path) == {}


def test_huge_output_keeps_only_its_head(tmp_path: Path) -> None:
    plugin = condition_plugin(tmp_path, "echo headline; yes 'filler line of output' | head -c 10000000", timeout="20s")
    started = time.monotonic()
    assert run_check(plugin, tmp_path) == CheckResult(0, "headline")
    assert time.monotonic() - started < 5.0


def test_a_huge_single_line_is_bounded_by_the_output_limit(tmp_path: Path) -> None:
    result = run_check(condition_plugin(tmp_path, "head -c 10000000 /dev/zero | tr '\\0' x", timeout="20s"), tmp_path)
    assert result.exit_code == 0
    assert 0 < len(result.first_line) <= _OUTPUT_LIMIT
    assert set(result.first_line) == {"x"}
