"""What the Deacon and the operator read of a whole town: the ``--once`` report against the schema gtui ships, its health
word, and why each run ended (reported summary, last log line, skipped agent, timeout, abandoned) wherever a run is shown."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from enginekit import add_plugin, claim_running, gtui, ledger, make_town, one_error_line, runs
from kennelkit import start_kennel

MANUAL = 'type = "manual"'
HOURLY = 'type = "cooldown"\nduration = "1h"'
SCHEMA = json.loads(resources.files("gtcore").joinpath("once-report.schema.json").read_text(encoding="utf-8"))


def check_report(report: dict[str, Any]) -> None:
    """The report is valid by the schema gtui ships (every key, type and closed set of words)."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(report)


def entry(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in report["plugins"] if item["name"] == name)


@pytest.fixture
def town(tmp_path: Path) -> Path:
    """A town with a run of each ending: reported, failed with a last log line, skipped agent, timed out; a paused plugin
    and an invalid one."""
    town = make_town(tmp_path / "town", 'dogs = 4\nkill_grace = "1s"\n')
    add_plugin(town, "reporter", MANUAL, 'gt plugin record-run --plugin reporter --result warning --title "3 stale branches"\n')
    add_plugin(town, "loud", HOURLY, "echo starting\necho 'disk /var is 97% full'\necho\nexit 1\n",
               execution="notify_on_failure = true\nseverity = 'high'")
    add_plugin(town, "thinker", MANUAL, None)  # an agent plugin, and no agent_command in the settings
    add_plugin(town, "slow", HOURLY, "sleep 30\n", execution='timeout = "1s"\nnotify_on_failure = true')
    add_plugin(town, "resting", 'type = "cooldown"\nduration = "1h"', "echo rested\n")
    (town / "plugins" / "broken").mkdir()
    (town / "plugins" / "broken" / "plugin.md").write_text("+++\nname = 'broken'\n[gate]\ntype = 'sometimes'\n+++\n")
    start_kennel(town)
    for name in ("reporter", "loud", "thinker", "slow"):
        gtui(town, "plugin", "run", name)
    assert gtui(town, "plugin", "disable", "resting", "--reason", "disk work until Friday").code == 0
    return town


def test_the_once_report_is_valid_by_its_schema_and_says_what_needs_a_person(town: Path) -> None:
    first = gtui(town, "--once", "--json")
    assert first.code == 1, first.err  # the town is failing: loud and slow ended badly, high escalations wait
    report = first.json()
    check_report(report)
    assert report["schema"] == 2 and report["health"]["status"] == "failing"
    reasons = report["health"]["reasons"]
    assert any(reason.startswith("plugin loud: its last run ended badly") and "disk /var is 97% full" in reason for reason in reasons)
    assert any(reason.startswith("1 high escalation not acknowledged: esc-") for reason in reasons)
    assert any(reason.startswith("1 escalation not acknowledged: esc-") for reason in reasons)  # slow's, of severity medium
    assert any(reason.startswith("invalid plugin broken:") for reason in reasons)
    assert report["escalations"]["open"] == 2 and report["escalations"]["by_severity"]["high"] == 1
    assert set(report["escalations"]["unacknowledged"]) == {"high", "medium"}
    assert [bad["name"] for bad in report["invalid"]] == ["broken"]
    assert report["problems"] == [] and first.err == ""  # no settings/escalation.json: its defaults, and not a word about it
    assert {item["id"].split("-")[0] for item in report["finished"]} == {"run"}

    loud, reporter, resting = entry(report, "loud"), entry(report, "reporter"), entry(report, "resting")
    assert (loud["last_run"]["result"], loud["last_run"]["summary"], loud["last_run"]["summary_from_log"]) == (
        "failure", "disk /var is 97% full", True)
    assert loud["failure_streak"] == 1 and loud["paused"] is None
    assert (reporter["last_run"]["result"], reporter["last_run"]["summary"], reporter["last_run"]["summary_from_log"]) == (
        "warning", "3 stale branches", False)
    assert reporter["failure_streak"] == 0
    assert resting["paused"]["reason"] == "disk work until Friday" and "@" in resting["paused"]["by"]
    assert resting["gate"]["state"] == "paused" and resting["dispatched"] is False

    again = gtui(town, "--once", "--json")
    check_report(again.json())
    assert again.json()["finished"] == []  # each ended run is reported once


def test_plugin_list_json_carries_the_same_facts(town: Path) -> None:
    listed = {item["name"]: item for item in gtui(town, "plugin", "list", "--json").json()["plugins"]}
    once = gtui(town, "--once", "--read-only", "--json").json()
    check_report(once)
    for name in ("reporter", "loud", "thinker", "slow", "resting"):
        for key in ("last_run", "failure_streak", "paused", "next_due"):
            assert listed[name][key] == entry(once, name)[key], (name, key)


def test_each_reason_is_said_where_runs_are_shown(town: Path) -> None:
    shown = {name: gtui(town, "plugin", "show", name, "--json").json()["last_run"] for name in ("loud", "thinker", "slow", "reporter")}
    assert shown["thinker"]["result"] == "skipped"
    assert shown["thinker"]["reason"] == "no agent_command configured in settings/gtui.toml for this agent plugin"
    assert shown["slow"]["result"] == "timeout" and "1s" in shown["slow"]["reason"]
    assert shown["loud"]["summary"] == "disk /var is 97% full"

    skipped_log = gtui(town, "plugin", "log", "thinker")
    assert skipped_log.code != 0 or skipped_log.out
    said = skipped_log.out + skipped_log.err
    assert "ended skipped without starting anything (no agent_command configured" in said
    assert "removed by a digest" not in said and "never started" not in said

    history = gtui(town, "plugin", "history", "thinker").out
    assert "no agent_command configured" in " ".join(history.split())
    loud = gtui(town, "plugin", "show", "loud").out
    assert "disk /var is 97% full" in " ".join(loud.split()) and "(its last log line)" in " ".join(loud.split())


def test_an_abandoned_run_says_why_and_makes_the_town_fail(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "orphan", MANUAL)
    book = ledger(town)
    try:
        claim_running(book, "orphan", data={"owner": {"host": os.uname().nodename, "pid": 2**22 + 17, "started": 1.0}})
    finally:
        book.close()
    done = gtui(town, "--once", "--json")
    report = done.json()
    check_report(report)
    (run,) = runs(town, "orphan")
    assert run.result == "abandoned" and run.data["reason"]
    assert report["abandoned"] == [run.ref]
    assert entry(report, "orphan")["last_run"]["reason"] == run.data["reason"]
    assert gtui(town, "plugin", "show", "orphan", "--json").json()["last_run"]["reason"] == run.data["reason"]


def test_an_invalid_plugin_is_named_by_show_and_run(town: Path) -> None:
    for argv in (("plugin", "show", "broken"), ("plugin", "run", "broken")):
        result = gtui(town, *argv)
        assert result.code == 2
        line = one_error_line(result, "plugin broken is invalid", str(town.resolve() / "plugins" / "broken" / "plugin.md"))
        assert "sometimes" in line and "no plugin named" not in line


def test_runs_queued_and_running_are_valid_by_the_schema(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", 'kennel = "external"\n')  # nothing takes the runs: they stay queued
    add_plugin(town, "due", HOURLY)
    add_plugin(town, "busy", MANUAL)
    book = ledger(town)
    try:
        claim_running(book, "busy", data={"owner": {"host": os.uname().nodename, "pid": os.getpid(), "started": 1.0}}, lease=600)
    finally:
        book.close()
    report = gtui(town, "--once", "--json").json()
    check_report(report)
    assert (entry(report, "due")["run"]["status"], entry(report, "due")["last_run"]["status"]) == ("queued", "queued")
    assert entry(report, "busy")["last_run"]["status"] == "running"
    check_report(gtui(town, "--once", "--json", "--read-only").json())
