"""A command line an operator can trust: read-only is read-only, a town is a town, runs never outlive their command, words are plain.

Everything runs the real ``gtui`` command (tests/enginekit.py) on real towns; the signal test
sends a real SIGTERM to a real gtui with a real run in flight.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from enginekit import add_plugin, gone, gtui, gtui_start, kill_group, ledger, make_town, read_pid, runs, taken, wait_for

WRITING = [
    ("event", "emit", "x"),
    ("escalate", "Something broke", "-s", "high"),
    ("escalate", "ack", "esc-1"),
    ("escalate", "close", "esc-1", "--reason", "done"),
    ("escalate", "stale"),
    ("plugin", "run", "hello"),
    ("plugin", "enable", "hello"),
    ("plugin", "disable", "hello"),
    ("plugin", "digest"),
    ("dog", "dispatch", "--plugin", "hello"),
    ("report", "success", "done"),
]
READING = [("plugin", "list"), ("plugin", "show", "hello"), ("plugin", "history", "hello"), ("dog", "list"), ("escalate", "list"),
           ("mail", "list")]


def town_with_hello(tmp_path: Path) -> Path:
    town = make_town(tmp_path / "town")
    add_plugin(town, "hello", run_sh='echo hello\ntouch "$GT_TOWN/ran"\n')
    return town


# -- read-only is read-only ---------------------------------------------------------------------


@pytest.mark.parametrize("args", WRITING, ids=[" ".join(args[:2]) for args in WRITING])
def test_read_only_refuses_every_command_that_writes(tmp_path: Path, args: tuple[str, ...]) -> None:
    town = town_with_hello(tmp_path)
    result = gtui(town, "--read-only", *args)
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert "--read-only never writes" in result.err
    assert not (town / ".gtui").exists()  # not even a ledger was created


def test_read_only_listings_create_nothing_and_dry_runs_are_allowed(tmp_path: Path) -> None:
    town = town_with_hello(tmp_path)
    for args in READING:
        result = gtui(town, "--read-only", *args, "--json")
        assert result.code == 0, (args, result.err)
    assert gtui(town, "--read-only", "escalate", "x", "-s", "low", "--dry-run").code == 0
    assert gtui(town, "--read-only", "plugin", "digest", "--dry-run").code == 0
    assert not (town / ".gtui" / "ledger.db").exists()


def test_once_read_only_evaluates_and_reports_but_runs_nothing(tmp_path: Path) -> None:
    town = town_with_hello(tmp_path)
    result = gtui(town, "--once", "--wait", "--read-only", "--json")
    assert result.code == 0, result.err
    (entry,) = result.json()["plugins"]
    assert entry["gate"]["open"] is True and entry["dispatched"] is False and "read-only: not dispatched" in entry["gate"]["reason"]
    assert not (town / "ran").exists() and not (town / ".gtui" / "ledger.db").exists()
    assert gtui(town, "--once", "--wait", "--read-only", "--event", "go").code == 2


# -- a town is a town ---------------------------------------------------------------------------


def test_a_directory_that_is_no_town_is_refused_with_how_to_make_one(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-town"
    empty.mkdir()
    result = gtui(empty, "plugin", "list")
    assert result.code == 2 and result.err.count("\n") == 1
    assert "is not a town" in result.err and f"gtui init {empty.resolve()}" in result.err
    assert list(empty.iterdir()) == []  # nothing planted there
    made = gtui(empty, "init", str(empty), "--json")
    assert made.code == 0 and {Path(path).name for path in made.json()["made"]} == {"plugins", "settings", "gtui.toml"}
    assert gtui(empty, "plugin", "list", "--json").json()["plugins"] == []
    assert "already" in gtui(empty, "init", str(empty)).out


def test_dispatch_for_a_rig_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    town = town_with_hello(tmp_path)
    result = gtui(town, "dog", "dispatch", "--plugin", "hello", "--rig", "nope")
    assert result.code == 2 and "no rig named 'nope'" in result.err
    assert runs(town, "hello") == []


# -- settings: broken files, keymaps ------------------------------------------------------------


def test_a_broken_gtui_toml_stops_what_runs_and_is_a_warning_for_what_reads(tmp_path: Path) -> None:
    town = town_with_hello(tmp_path)
    (town / "settings" / "gtui.toml").write_text("dogs = 'many'\n", encoding="utf-8")
    listed = gtui(town, "plugin", "list", "--json")
    assert listed.code == 0 and [plugin["name"] for plugin in listed.json()["plugins"]] == ["hello"]
    assert listed.err.startswith("gtui: warning:") and "gtui.toml" in listed.err and "'dogs'" in listed.err
    for args in (("plugin", "run", "hello"), ("--once", "--wait",), ("escalate", "x", "-s", "low")):
        result = gtui(town, *args, "--json")
        assert result.code == 2 and "'dogs'" in result.json()["error"], args


def test_keymap_mistakes_are_problems_of_the_patrol(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", '[keymap]\n"plugins.force_run" = "q"\n"plugins.rnu" = "R"\n"plugins.run" = "R"\n')
    report = gtui(town, "--once", "--wait", "--json")
    assert report.code == 0
    problems = {problem["field"]: problem["reason"] for problem in report.json()["problems"]}
    assert "must always work" in problems["keymap.plugins.force_run"]
    assert "did you mean 'plugins.run'" in problems["keymap.plugins.rnu"]
    assert "keymap.plugins.run" not in problems  # a good remap is fine


# -- runs never outlive their command -----------------------------------------------------------


def test_sigterm_lets_go_of_the_run_which_its_kennel_finishes(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    plugin = add_plugin(town, "slow", 'type = "manual"', 'echo $$ > leader.pid\necho "working"\nsleep 2\n')
    command = gtui_start(town, "plugin", "run", "slow")
    try:
        wait_for(lambda: taken(town, "slow"), 15, "the kennel to take the run")
        read_pid(plugin / "leader.pid")
        command.send_signal(signal.SIGTERM)
        _, err = command.communicate(timeout=20)
        assert command.returncode == 2 and err.count("\n") == 1 and "stopped by SIGTERM" in err, err
        (run,) = runs(town, "slow")
        assert "goes on in the kennel" in err and run.ref in err
        ended = wait_for(lambda: ledger(town).get(run.id).status == "closed" and ledger(town).get(run.id), 15, "its end")
        assert ended.result == "success", "the command that followed it went away; the run did not"
    finally:
        command.kill()
        command.wait()


def test_ctrl_c_stops_the_run_it_follows_and_records_it(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    plugin = add_plugin(town, "slow", 'type = "manual"', 'echo $$ > leader.pid\necho "working"\nsleep 60\n')
    command = gtui_start(town, "plugin", "run", "slow")
    leader = None
    try:
        wait_for(lambda: taken(town, "slow"), 15, "the kennel to take the run")
        leader = read_pid(plugin / "leader.pid")
        command.send_signal(signal.SIGINT)
        _, err = command.communicate(timeout=20)
        (run,) = runs(town, "slow")
        assert command.returncode == 2 and err.count("\n") == 1, err
        assert f"interrupted: {run.ref} was stopped and recorded abandoned" in err, err
        assert (run.status, run.result) == ("closed", "abandoned")
        assert "stopped: interrupted (ctrl+c) in gtui plugin run" in run.data["reason"]
        assert "[gtui: stopped" in Path(run.data["log"]).read_text()
        wait_for(lambda: gone(leader), 5, "the run's process to be gone")
    finally:
        command.kill()
        command.wait()
        if leader is not None:
            kill_group(leader)


# -- plain words --------------------------------------------------------------------------------


def test_words_for_people_not_for_python(tmp_path: Path) -> None:
    town = town_with_hello(tmp_path)
    assert "an escalation id looks like esc-12, not 'banana'" in gtui(town, "escalate", "show", "banana").err
    assert gtui(town, "plugin", "enable", "hello").out.strip() == "hello was not paused: nothing to resume"
    gtui(town, "escalate", "Disk filling", "-s", "low")
    shown = gtui(town, "escalate", "show", "esc-1").out
    assert "True" not in shown and "False" not in shown and "stale" in shown


def test_a_killed_run_says_which_signal(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "suicidal", 'type = "manual"', "kill -TERM $$\n")
    result = gtui(town, "plugin", "run", "suicidal", "--json")
    assert result.code == 1
    assert result.json()["reason"] == "killed by SIGTERM" and result.json()["exit_code"] == -15


def test_plugin_log_prints_a_runs_log(tmp_path: Path) -> None:
    town = town_with_hello(tmp_path)
    assert gtui(town, "plugin", "run", "hello").code == 0
    assert gtui(town, "plugin", "log", "hello").out == "hello\n"
    shown = gtui(town, "plugin", "log", "hello", "run-1", "--json").json()
    assert (shown["run"], shown["result"], shown["log"]) == ("run-1", "success", "hello\n")
    add_plugin(town, "other")
    assert "is a run of hello, not of other" in gtui(town, "plugin", "log", "other", "run-1").err
    assert json.loads(gtui(town, "plugin", "log", "nope", "--json").out)["error"].startswith("plugin nope has no run")
