"""``gtui plugin list|show|history`` through the real console script, as the Deacon calls it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from enginekit import Result, gtui_env

from gtcore.storage import open_ledger

MakePlugin = Callable[..., Path]

PLUGIN_KEYS = {
    "name", "rig", "path", "description", "version", "enabled", "gate", "execution", "tracking",
    "has_run_script", "shadowed", "last_run", "run_count", "failure_count", "kind", "order", "failure_streak", "paused", "next_due",
}
RUN_KEYS = {"id", "plugin", "rig", "status", "result", "queued_at", "started_at", "finished_at", "exit_code", "duration_s", "dog", "log",
            "reason", "labels", "summary", "summary_from_log", "reported_result", "detail", "problems"}
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def gtui(*args: str | Path) -> Result:
    """``python -m gtui ARGS`` (with ``--town`` among them where needed); never a traceback."""
    done = subprocess.run([sys.executable, "-m", "gtui", *map(str, args)], capture_output=True, text=True, env=gtui_env(), timeout=60)
    assert "Traceback" not in done.stdout + done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def populated(town: Path, make_plugin: MakePlugin) -> Path:
    """cleanup (town, cooldown, markup in its description), deploy in three places, a broken one and a chatty one."""
    make_plugin(
        town / "plugins" / "cleanup",
        'name = "cleanup"\ndescription = "[bold]not bold[/bold]"\nversion = "1.2"\n[gate]\ntype = "cooldown"\nduration = "1h"',
        "Delete [red]stale[/red] branches.\n",
    )
    make_plugin(town / "plugins" / "deploy", 'name = "deploy"\n[gate]\ntype = "manual"')
    make_plugin(
        town / "alpha" / "plugins" / "deploy",
        'name = "deploy"\nversion = 3\n[gate]\ntype = "cron"\nschedule = "0 3 * * *"\ntimezone = "UTC"\n'
        '[tracking]\nlabels = ["team:ops"]\ndigest = true\n[execution]\ntimeout = "2m"\nnotify_on_failure = true\nseverity = "high"',
        "",
        run_sh="#!/bin/bash\necho deploying\n",
    )
    make_plugin(town / "alpha" / "crew" / "bob" / "plugins" / "deploy", 'name = "deploy"\n[gate]\ntype = "manual"')
    make_plugin(town / "alpha" / "plugins" / "broken", 'name = "[red]Broken"\n[gate]\ntype = "manual"')
    make_plugin(town / "alpha" / "plugins" / "chatty", 'name = "chatty"\ncolour = "red"\n[gate]\ntype = "event"\non = "startup"')
    return town


def record_runs(town: Path, plugin: str, rig: str, results: list[str | None], start: float = T0) -> list[int]:
    """Claim and close one run per result (None: a kennel took it, and it is running), a minute apart."""
    ledger = open_ledger(town / ".gtui" / "ledger.db")
    ids = []
    for index, result in enumerate(results):
        started = start + 60 * index
        run = ledger.claim_run(plugin, rig, labels=["team:ops"], data={"dog": "dog-1"}, now=started)
        if result is None:
            ledger.take_run(run.id, {}, now=started)
        else:
            ledger.close_run(run.id, result, data={"exit_code": 0 if result == "success" else 1, "duration_s": 2.5}, now=started + 2.5)
        ids.append(run.id)
    ledger.close()
    return ids


# -- plugin list --------------------------------------------------------------------------


def test_list_json_shape(populated: Path) -> None:
    result = gtui("--town", populated, "plugin", "list", "--json")
    assert (result.code, result.err) == (0, "")
    payload = result.json()
    assert set(payload) == {"town", "plugins", "invalid", "warnings"}
    assert payload["town"] == str(populated.resolve())
    # discovery order: town plugins, then alpha's by directory name (broken is invalid, deploy is alpha's copy)
    assert [(p["name"], p["rig"]) for p in payload["plugins"]] == [("cleanup", "town"), ("chatty", "alpha"), ("deploy", "alpha")]
    for plugin in payload["plugins"]:
        assert set(plugin) == PLUGIN_KEYS
    cleanup, chatty, deploy = payload["plugins"]
    assert cleanup == {
        "name": "cleanup",
        "rig": "town",
        "path": str(populated.resolve() / "plugins" / "cleanup" / "plugin.md"),
        "description": "[bold]not bold[/bold]",
        "version": "1.2",
        "enabled": True,
        "gate": {"type": "cooldown", "duration": "1h"},
        "execution": {"type": "agent", "timeout": "10m", "notify_on_failure": False, "severity": "medium", "hosts": []},
        "tracking": {"labels": [], "digest": False},
        "has_run_script": False,
        "shadowed": [],
        "last_run": None,
        "run_count": 0,
        "failure_count": 0,
        "failure_streak": 0,
        "paused": None,
        "next_due": None,
        "kind": "plugin",
        "order": None,
    }
    assert deploy["version"] == 3
    assert deploy["gate"] == {"type": "cron", "schedule": "0 3 * * *", "timezone": "UTC"}
    assert deploy["execution"] == {"type": "script", "timeout": "2m", "notify_on_failure": True, "severity": "high", "hosts": []}
    assert deploy["tracking"] == {"labels": ["team:ops"], "digest": True}
    assert deploy["has_run_script"] is True
    root = populated.resolve()
    assert deploy["shadowed"] == [str(root / "alpha/crew/bob/plugins/deploy/plugin.md"), str(root / "plugins/deploy/plugin.md")]
    assert chatty["gate"] == {"type": "event", "on": "startup"}
    assert payload["invalid"] == [{
        "name": "broken",
        "path": str(root / "alpha/plugins/broken/plugin.md"),
        "line": 2,
        "error": "name '[red]Broken' is invalid: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit",
        "rig": "alpha",
    }]
    assert payload["warnings"] == [f"{root / 'alpha/plugins/chatty/plugin.md'}: unknown key 'colour' (line 3)"]


def test_list_json_on_an_empty_town(town: Path) -> None:
    result = gtui("plugin", "list", "--town", town, "--json")
    assert result.code == 0
    assert result.json() == {"town": str(town.resolve()), "plugins": [], "invalid": [], "warnings": []}


def test_list_reflects_ledger_runs(populated: Path) -> None:
    ids = record_runs(populated, "deploy", "alpha", ["success", "failure", "timeout", "success"])
    record_runs(populated, "cleanup", "town", ["success", None], start=T0 + 3600)
    plugins = {p["name"]: p for p in gtui("--town", populated, "plugin", "list", "--json").json()["plugins"]}
    deploy, cleanup, chatty = plugins["deploy"], plugins["cleanup"], plugins["chatty"]
    assert (deploy["run_count"], deploy["failure_count"]) == (4, 2)
    assert deploy["last_run"] == {"id": f"run-{ids[-1]}", "status": "closed", "started_at": "2023-11-14T22:16:20Z",
                                  "finished_at": "2023-11-14T22:16:22Z", "result": "success", "summary": None,
                                  "summary_from_log": False, "reason": None}
    assert deploy["failure_streak"] == 0  # the timeout and the failure came before its last success
    assert (cleanup["run_count"], cleanup["failure_count"]) == (2, 0)
    assert cleanup["last_run"]["result"] == "running"
    assert cleanup["last_run"]["started_at"] == "2023-11-14T23:14:20Z"
    assert (chatty["run_count"], chatty["failure_count"], chatty["last_run"]) == (0, 0, None)


def test_list_human_output(populated: Path) -> None:
    record_runs(populated, "deploy", "alpha", ["failure"])
    result = gtui("--town", populated, "plugin", "list")
    assert (result.code, result.err) == (0, "")
    assert "Plugins (3)" in result.out
    lines = {line.split()[0]: line.split() for line in result.out.splitlines() if line.strip()}
    assert lines["cleanup"][:4] == ["cleanup", "town", "cooldown", "1h"]
    assert lines["deploy"][-5:] == ["failure", "1", "failed", "1", "1"]  # its last run failed: one in a row
    assert "Invalid plugins (1)" in result.out
    assert "name '[red]Broken' is invalid" in result.out  # markup from a file is shown as written
    assert "warning: " in result.out and "unknown key 'colour' (line 3)" in result.out


def test_no_verb_without_a_terminal_points_to_once(populated: Path) -> None:
    result = gtui("--town", populated)
    assert result.code == 2
    assert result.err == (
        "gtui: error: the control room needs a terminal; for a headless patrol use 'gtui --once' (add --json for programs)\n")


# -- plugin show --------------------------------------------------------------------------


def test_show_json(populated: Path) -> None:
    result = gtui("--town", populated, "plugin", "show", "cleanup", "--json")
    assert (result.code, result.err) == (0, "")
    payload = result.json()
    assert set(payload) == PLUGIN_KEYS | {"instructions", "warnings"}
    assert payload["name"] == "cleanup"
    assert payload["instructions"] == "Delete [red]stale[/red] branches."
    assert payload["warnings"] == []
    chatty = gtui("--town", populated, "plugin", "show", "chatty", "--json").json()
    assert chatty["warnings"] == ["unknown key 'colour' (line 3)"]


def test_show_json_of_the_winning_copy(populated: Path) -> None:
    record_runs(populated, "deploy", "alpha", ["failure"])
    payload = gtui("plugin", "show", "deploy", "--json", "--town", populated).json()
    assert payload["rig"] == "alpha" and payload["has_run_script"] is True
    assert len(payload["shadowed"]) == 2
    assert (payload["run_count"], payload["failure_count"], payload["last_run"]["result"]) == (1, 1, "failure")


def test_show_human_output_is_markup_safe(populated: Path) -> None:
    result = gtui("--town", populated, "plugin", "show", "cleanup")
    assert (result.code, result.err) == (0, "")
    assert "[bold]not bold[/bold]" in result.out
    assert "Delete [red]stale[/red] branches." in result.out
    assert "cooldown 1h" in result.out


# -- plugin history -----------------------------------------------------------------------


def test_history_json(populated: Path) -> None:
    first, second, third = record_runs(populated, "deploy", "alpha", ["success", "failure", None])
    result = gtui("--town", populated, "plugin", "history", "deploy", "--json")
    assert (result.code, result.err) == (0, "")
    payload = result.json()
    assert set(payload) == {"plugin", "runs", "digests"}
    assert payload["digests"] == []
    assert payload["plugin"] == "deploy"
    runs = payload["runs"]
    assert all(set(run) == RUN_KEYS for run in runs)
    assert [(run["id"], run["result"]) for run in runs] == [
        (f"run-{third}", "running"), (f"run-{second}", "failure"), (f"run-{first}", "success"),
    ]
    newest, failed, oldest = runs
    assert (newest["finished_at"], newest["exit_code"], newest["dog"]) == (None, None, "dog-1")
    assert failed == {
        "id": f"run-{second}",
        "plugin": "deploy",
        "rig": "alpha",
        "status": "closed",
        "result": "failure",
        "queued_at": "2023-11-14T22:14:20Z",
        "started_at": "2023-11-14T22:14:20Z",
        "finished_at": "2023-11-14T22:14:22Z",
        "exit_code": 1,
        "duration_s": 2.5,
        "dog": "dog-1",
        "log": None,
        "reason": None,
        "summary": None,
        "summary_from_log": False,
        "reported_result": None,
        "detail": None,
        "labels": ["plugin:deploy", "result:failure", "rig:alpha", "team:ops", "type:plugin-run"],
        "problems": [],
    }
    assert oldest["labels"] == ["plugin:deploy", "result:success", "rig:alpha", "team:ops", "type:plugin-run"]


def test_history_limit(populated: Path) -> None:
    ids = record_runs(populated, "deploy", "alpha", ["success", "success", "failure"])
    runs = gtui("--town", populated, "plugin", "history", "deploy", "--limit", "2", "--json").json()["runs"]
    assert [run["id"] for run in runs] == [f"run-{ids[2]}", f"run-{ids[1]}"]


def test_history_of_a_plugin_that_never_ran(populated: Path) -> None:
    result = gtui("--town", populated, "plugin", "history", "chatty", "--json")
    assert (result.code, result.json()) == (0, {"plugin": "chatty", "runs": [], "digests": []})


def test_history_of_a_removed_plugin_still_shows_its_runs(populated: Path) -> None:
    (ran,) = record_runs(populated, "retired", "town", ["success"])
    runs = gtui("--town", populated, "plugin", "history", "retired", "--json").json()["runs"]
    assert [run["id"] for run in runs] == [f"run-{ran}"]


def test_history_human_output(populated: Path) -> None:
    ids = record_runs(populated, "deploy", "alpha", ["success", "timeout"])
    result = gtui("--town", populated, "plugin", "history", "deploy")
    assert (result.code, result.err) == (0, "")
    assert "Runs of deploy (2)" in result.out
    rows = {line.split()[0]: line for line in result.out.splitlines() if line.strip().startswith("run-")}
    assert set(rows) == {f"run-{ids[0]}", f"run-{ids[1]}"}
    assert "timeout" in rows[f"run-{ids[1]}"] and "2.5s" in rows[f"run-{ids[1]}"] and "dog-1" in rows[f"run-{ids[1]}"]


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--town", "{missing}", "plugin", "list"], "no town at {missing} (--town): the directory does not exist"),
        (["--town", "{town}", "plugin", "show", "nope"], "no plugin named 'nope' in town {town}"),
        (["--town", "{town}", "plugin", "show", "broken"],
         "plugin broken is invalid: {town}/alpha/plugins/broken/plugin.md:2: name '[red]Broken' is invalid: use lowercase letters,"
         " digits, '.', '_' and '-', starting with a letter or digit; fix the file (gtui plugin list shows every invalid one)"),
        (["--town", "{town}", "plugin", "history", "nope"], "no plugin named 'nope' in town {town}, and no runs of it on the ledger"),
        (["--town", "{town}", "plugin", "bogus"], "argument VERB: invalid choice: 'bogus' (choose from 'list', 'show', 'history', *"),
        (["--town", "{town}", "plugin"], "the following arguments are required: VERB (see 'gtui plugin --help')"),
        (["--town", "{town}", "plugin", "show"], "the following arguments are required: name (see 'gtui plugin show --help')"),
        (["--town", "{town}", "plugin", "history", "deploy", "--limit", "0"],
         "argument --limit: expected a whole number of at least 1, not '0' (see 'gtui plugin history --help')"),
        (["--town", "{town}", "plugin", "list", "--frobnicate"], "unrecognized arguments: --frobnicate (see 'gtui --help')"),
    ],
    ids=["no-such-town", "no-such-plugin", "invalid-plugin-is-not-showable", "history-unknown", "bad-verb", "missing-verb",
         "missing-name", "bad-limit", "unknown-option"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_errors_are_one_line_exit_2(populated: Path, args: list[str], message: str, as_json: bool) -> None:
    names = {"town": str(populated.resolve()), "missing": str(populated / "missing")}
    argv = [arg.format(**names) for arg in args] + (["--json"] if as_json else [])
    expected = message.format(**names)
    result = gtui(*argv)
    assert result.code == 2
    assert result.err.startswith("gtui: error: ") and result.err.endswith("\n") and result.err.count("\n") == 1
    shown = result.err.removeprefix("gtui: error: ").removesuffix("\n")
    if expected.endswith("*"):  # the rest of the message names other verbs, which grow with the command line
        assert shown.startswith(expected[:-1]) and shown.endswith(") (see 'gtui plugin --help')")
    else:
        assert shown == expected
    if as_json:
        assert result.json() == {"error": shown}
    else:
        assert result.out == ""
