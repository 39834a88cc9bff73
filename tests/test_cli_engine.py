"""The engine through the real ``gtui`` command line, as the Deacon and operators call it:
``--once [--json] [--event]``, ``plugin run|enable|disable``, ``dog list|dispatch``, ``event emit``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from enginekit import (
    ENTRY_KEYS,
    GATE_KEYS,
    REPORT_KEYS,
    RUN_KEYS,
    Result,
    add_plugin,
    gtui,
    gtui_env,
    gtui_start,
    kill_group,
    ledger,
    make_town,
    read_pid,
    runs,
    taken,
    wait_for,
)
from kennelkit import kennel_pid

MANUAL = 'type = "manual"'


def entry(report: dict, name: str) -> dict:
    return next(item for item in report["plugins"] if item["name"] == name)


def one_line_error(done: Result, *needles: str) -> str:
    """A refusal: exit 2, exactly one line on stderr, saying what the needles say, no traceback."""
    assert done.code == 2, (done.code, done.out, done.err)
    lines = done.err.strip().splitlines()
    assert len(lines) == 1, done.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_disabled_plugin_never_runs_by_itself_but_force_runs_it(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "dormant", top="enabled = false")
    for _ in range(3):
        done = gtui(town, "--once", "--wait", "--json")
        assert done.code == 0, done.err
        item = entry(done.json(), "dormant")
        assert (item["gate"]["open"], item["dispatched"], item["run"]) == (False, False, None)
        assert "disabled" in item["gate"]["reason"]
    assert runs(town, "dormant") == []

    one_line_error(gtui(town, "plugin", "run", "dormant"), "dormant", "disabled", "--force")
    refused = gtui(town, "plugin", "run", "dormant", "--json")
    assert refused.code == 2 and "disabled" in refused.json()["error"]
    assert runs(town, "dormant") == []

    forced = gtui(town, "plugin", "run", "dormant", "--force", "--json")
    assert forced.code == 0, forced.err
    assert forced.json()["result"] == "success"
    assert [run.result for run in runs(town, "dormant")] == ["success"]
    assert entry(gtui(town, "--once", "--wait", "--json").json(), "dormant")["dispatched"] is False


def test_an_operator_pause_closes_the_gate_until_enable(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "sweeper")

    paused = gtui(town, "plugin", "disable", "sweeper", "--reason", "disk swap tonight", "--json")
    assert paused.code == 0, paused.err
    assert paused.json()["paused"] is True
    for _ in range(2):
        item = entry(gtui(town, "--once", "--wait", "--json").json(), "sweeper")
        assert (item["gate"]["open"], item["dispatched"]) == (False, False)
        assert item["gate"]["reason"] == "paused by operator: disk swap tonight"
    assert runs(town, "sweeper") == []
    one_line_error(gtui(town, "plugin", "run", "sweeper"), "sweeper", "paused", "disk swap tonight")

    assert gtui(town, "plugin", "enable", "sweeper").code == 0
    done = gtui(town, "--once", "--wait", "--json")
    item = entry(done.json(), "sweeper")
    assert item["dispatched"] is True and item["run"]["result"] == "success"
    assert [run.result for run in runs(town, "sweeper")] == ["success"]


def test_a_run_in_flight_in_another_process_blocks_plugin_run_and_shows_a_working_dog(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    directory = add_plugin(town, "slow", MANUAL, "echo $$ > run.pid\nwhile [ ! -e release ]; do sleep 0.05; done\necho released\n")
    holder = gtui_start(town, "plugin", "run", "slow", "--json")
    script = None
    try:
        in_flight = wait_for(lambda: taken(town, "slow"), 15, "the kennel to take the run")
        script = read_pid(directory / "run.pid")

        one_line_error(gtui(town, "plugin", "run", "slow"), "slow", "in flight", in_flight.ref)
        one_line_error(gtui(town, "plugin", "run", "slow", "--force"), "in flight")
        one_line_error(gtui(town, "dog", "dispatch", "--plugin", "slow"), "in flight")

        dogs = gtui(town, "dog", "list", "--json")
        assert dogs.code == 0, dogs.err
        working = [dog for dog in dogs.json()["dogs"] if dog["state"] == "working"]
        assert [(dog["plugin"], dog["run_id"], dog["name"], dog["kennel_pid"]) for dog in working] == [
            ("slow", in_flight.ref, in_flight.data["dog"], kennel_pid(town))]
        assert len(dogs.json()["dogs"]) == 2  # dogs = 2: the other one idle

        item = entry(gtui(town, "--once", "--wait", "--json").json(), "slow")
        assert item["dispatched"] is False and in_flight.ref in item["gate"]["reason"]

        (directory / "release").touch()
        out, err = holder.communicate(timeout=30)
        assert holder.returncode == 0, err
        assert '"result": "success"' in out
    finally:
        holder.kill()
        holder.wait()
        if script is not None:
            kill_group(script)
    assert [run.result for run in runs(town, "slow")] == ["success"]
    assert all(dog["state"] == "idle" for dog in gtui(town, "dog", "list", "--json").json()["dogs"])


def test_exit_codes_of_plugin_run_and_once(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "good", MANUAL, "echo fine\n")
    add_plugin(town, "bad", MANUAL, "echo oops\nexit 3\n")

    assert gtui(town, "plugin", "run", "good").code == 0
    failed = gtui(town, "plugin", "run", "bad", "--json")
    assert failed.code == 1
    assert (failed.json()["result"], failed.json()["exit_code"]) == ("failure", 3)
    one_line_error(gtui(town, "plugin", "run", "nosuch"), "nosuch")

    first = gtui(town, "--once", "--wait", "--json")
    assert first.code == 1  # nothing open, but bad's failure is among what finished since
    assert [run["id"] for run in first.json()["finished"]] != []
    again = gtui(town, "--once", "--wait", "--json")
    assert (again.code, again.json()["finished"]) == (0, [])  # reported once; bad is manual: its failure only degrades
    assert again.json()["health"]["status"] == "degraded"
    assert [reason.split(":")[0] for reason in again.json()["health"]["reasons"]] == ["plugin bad (manual)"]
    (town / "plugins" / "bad" / "run.sh").write_text("echo mended\n")
    assert gtui(town, "plugin", "run", "bad").code == 0
    assert gtui(town, "--once", "--wait", "--json").json()["health"]["status"] == "ok"  # mended: nothing to look at
    add_plugin(town, "flaky", run_sh="exit 1\n")
    add_plugin(town, "fine", run_sh="exit 0\n")
    done = gtui(town, "--once", "--wait", "--json")
    assert done.code == 1
    results = {item["name"]: item["run"]["result"] for item in done.json()["plugins"] if item["run"]}
    assert results == {"flaky": "failure", "fine": "success"}
    still = gtui(town, "--once", "--wait", "--json")  # flaky cools down, its failure stands: it runs by itself, so it fails
    assert (still.code, still.json()["health"]["status"], still.json()["health"]["reasons"][0].split(":")[0]) == (
        1, "failing", "plugin flaky")
    told = gtui(town, "--once", "--wait")  # for people: the word and why, beside the exit status
    assert told.code == 1 and "health: failing" in told.out and "plugin flaky: its last run ended badly" in told.out
    (town / "plugins" / "flaky" / "plugin.md").unlink()  # flaky goes; with it, what made the town fail
    assert gtui(town, "--once", "--wait", "--json").code == 0  # fine cools down now: no run, no failure

    missing = gtui(tmp_path / "nowhere", "--once", "--wait", "--json")
    one_line_error(missing, "nowhere")
    assert "does not exist" in missing.json()["error"]

    (town / "settings" / "gtui.toml").write_text('dogs = "many"\n')
    broken = gtui(town, "--once", "--wait")
    line = one_line_error(broken, "gtui.toml", "dogs")
    assert str(town / "settings" / "gtui.toml") in line


def test_once_json_has_exactly_the_documented_shape(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "ticker", run_sh="echo tick\n")
    add_plugin(town, "lever", MANUAL)
    (town / "plugins" / "broken").mkdir()
    (town / "plugins" / "broken" / "plugin.md").write_text("+++\nname = 'broken'\n+++\n")

    done = gtui(town, "--once", "--wait", "--json")
    assert done.code == 0, done.err
    report = done.json()
    assert set(report) == REPORT_KEYS
    assert report["town"] == str(town.resolve())
    assert report["started_at"] <= report["finished_at"] and report["finished_at"].endswith("Z")
    assert report["abandoned"] == []
    assert [bad["path"] for bad in report["invalid"]] == [str(town.resolve() / "plugins" / "broken" / "plugin.md")]
    for item in report["plugins"]:
        assert set(item) == ENTRY_KEYS
        assert set(item["gate"]) == GATE_KEYS
        assert item["run"] is None or set(item["run"]) == RUN_KEYS
    ticker, lever = entry(report, "ticker"), entry(report, "lever")
    assert ticker["rig"] == "town" and ticker["gate"]["type"] == "cooldown" and ticker["dispatched"] is True
    assert ticker["run"]["result"] == "success" and ticker["run"]["exit_code"] == 0 and ticker["run"]["dog"] in ("rex", "fido")
    assert Path(ticker["run"]["log"]).read_text() == "tick\n"
    assert lever["gate"] == {"type": "manual", "open": False, "state": "manual", "reason": "manual: runs only when asked",
                             "next_open_at": None}
    assert lever["run"] is None

    again = entry(gtui(town, "--once", "--wait", "--json").json(), "ticker")
    assert again["gate"]["open"] is False and again["gate"]["next_open_at"].endswith("Z")  # cooling down, opens in an hour


def test_event_gates_open_once_per_emitted_event(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "on-deploy", 'type = "event"\non = "deploy"', "echo deployed\n")
    add_plugin(town, "on-startup", 'type = "event"\non = "startup"', "echo started\n")

    quiet = gtui(town, "--once", "--wait", "--json").json()
    assert entry(quiet, "on-deploy")["gate"]["reason"] == "waiting for event deploy"
    assert not any(item["dispatched"] for item in quiet["plugins"])

    started = gtui(town, "--once", "--wait", "--json", "--event", "startup").json()
    assert entry(started, "on-startup")["run"]["result"] == "success"
    assert entry(started, "on-deploy")["dispatched"] is False

    emitted = gtui(town, "event", "emit", "deploy", "--json")
    assert emitted.code == 0 and emitted.json() == {"event": "deploy", "emitted": True}
    first = gtui(town, "--once", "--wait", "--json").json()
    assert entry(first, "on-deploy")["run"]["result"] == "success"
    assert entry(first, "on-startup")["dispatched"] is False
    second = gtui(town, "--once", "--wait", "--json").json()
    assert not any(item["dispatched"] for item in second["plugins"])
    assert [len(runs(town, name)) for name in ("on-deploy", "on-startup")] == [1, 1]

    one_line_error(gtui(town, "event", "emit", "Not An Event"), "not an event name")


def test_dog_dispatch_returns_at_once_with_the_run_in_gas_town_s_shape(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    directory = add_plugin(town, "fetch", MANUAL, 'sleep 2; echo "$GT_DOG" > dog.txt\n')
    done = gtui(town, "dog", "dispatch", "--plugin", "fetch", "--json")
    assert done.code == 0, done.err
    shown = done.json()
    assert set(shown) == {"plugin", "plugin_path", "dog", "work", "session_started", "work_confirmed", "run", "status"}
    assert (shown["plugin"], shown["work"], shown["plugin_path"]) == ("fetch", "plugin:fetch", str(directory.resolve()))
    assert shown["status"] == "running" and shown["dog"] in ("rex", "fido"), "the kennel took it before the answer"
    (run,) = runs(town, "fetch")
    assert run.ref == shown["run"] and run.status == "running", "it returned while the run goes on"
    ended = wait_for(lambda: ledger(town).get(run.id).status == "closed" and ledger(town).get(run.id), 15, "the run's end")
    assert ended.result == "success"
    assert (directory / "dog.txt").read_text().strip() == shown["dog"]


def test_lines_for_a_pipe_are_written_plain_without_importing_rich(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    code = ("import sys\nfrom gtui.cli import main\ncode = main(sys.argv[1:])\n"
            "sys.stderr.write('rich imported' if 'rich' in sys.modules else 'rich not imported')\nsys.exit(code)\n")
    raised = subprocess.run([sys.executable, "-c", code, "--town", str(town), "escalate", "disk \x1b[31mfull", "-s", "low"],
                            capture_output=True, text=True, env=gtui_env(), timeout=60)
    assert raised.returncode == 0 and raised.stderr.endswith("rich not imported"), raised.stderr
    assert raised.stdout.splitlines()[0].startswith("ℹ️ Escalation created: esc-") and "\x1b" not in raised.stdout
    listed = subprocess.run([sys.executable, "-c", code, "--town", str(town), "escalate", "list"], capture_output=True, text=True,
                            env=gtui_env(), timeout=60)
    assert "disk full" in listed.stdout and listed.stderr.endswith("rich imported")  # a table is drawn by Rich
