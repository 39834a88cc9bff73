"""A plugin's ``gt`` and ``bd`` answered by the town's kennel, with the plugin's own standard streams.

Every run has a kennel (it runs it): the scripts in ``.gtui/bin`` ask it
first (:func:`gtui.thin.shim`).  The kennel answers only a process of a run it
holds, proven by the run's token in that process's environment, and only in
the environment it gave the run; the answer is the same as the command's own
process would give, and a command runs once, in the kennel or in the plugin.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from enginekit import gtui_env, wait_for
from gastown_town import PROBE, gastown_plugin, gastown_town
from kennelkit import kennel_engine

from gtcore import __version__
from gtcore.dogs import kennel_door as door
from gtcore.dogs.kennel import Kennel
from gtcore.storage import open_ledger

PROBES = """OUT="$GT_TOWN_ROOT/out/$GTUI_THIN"
mkdir -p "$OUT"
""" + PROBE + """probe version gt version
probe escalate gt escalate "disk full on $GTUI_THIN" -s high
probe note bd create "a note from $GTUI_THIN" -d "described" --json
probe mail gt mail send mayor/ -s "hello from $GTUI_THIN" --stdin <<BODY
a body read from the plugin's own stdin
BODY
probe plugins gt plugin list --json
probe missing gt plugin show no-such-plugin
probe report bd create "probe: report" -l "type:plugin-run,result:warning" --json
"""
IDS = re.compile(r"\b(note|run|esc|mail)-\d+\b|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|\b(off|require)\b")


def gtui(town: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gtui", "--town", str(town), *args], capture_output=True, text=True,
                          env={**gtui_env(), **(env or {})}, timeout=90)


def run_plugin(town: Path, name: str) -> dict[str, Any]:
    done = gtui(town, "plugin", "run", name, "--json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(gtui(town, "plugin", "history", name, "--json").stdout)["runs"][0]


def probes(town: Path, mode: str) -> dict[str, tuple[int, str, str]]:
    """Each probe's exit status and output, with ids, times and the mode's own words taken out."""
    base = town / "out" / mode
    return {path.stem: (int(path.read_text()), IDS.sub("#", (base / f"{path.stem}.out").read_text()),
                        IDS.sub("#", (base / f"{path.stem}.err").read_text()))
            for path in sorted(base.glob("*.rc"))}


def the_town(tmp_path: Path) -> Path:
    return gastown_town(tmp_path / "gt", "")


@pytest.fixture
def elsewhere(tmp_path: Path) -> Any:
    """A town whose kennel a person started in the foreground from another directory, its environment naming no town."""
    town = the_town(tmp_path)
    env = {key: value for key, value in gtui_env().items() if key not in door.TOWN_ENV}
    kennel = subprocess.Popen([sys.executable, "-m", "gtui", "--town", str(town), "kennel"], cwd=tmp_path, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (town / ".gtui" / "kennel" / f"{door.host_file_name(door.hostname())}.sock").exists(), 30)
        yield town
    finally:
        gtui(town, "kennel", "stop")
        kennel.wait(30)


def test_a_plugins_gt_and_bd_answered_by_the_kennel_are_what_its_own_process_answers(elsewhere: Path) -> None:
    town = elsewhere
    modes = ("require", "off")  # require: every call must be the kennel's (exit 2 otherwise); off: never
    for mode in modes:
        gastown_plugin(town, f"probe-{mode}", f"export GTUI_THIN={mode}\n{PROBES}", gate='type = "manual"')
    for mode in modes:
        run = run_plugin(town, f"probe-{mode}")
        assert run["result"] == "warning", run  # its report, through bd create -l type:plugin-run
    kennel, here = probes(town, "require"), probes(town, "off")
    assert kennel == here
    assert kennel["missing"][0] == 1 and kennel["missing"][2].startswith("Error: ")
    assert {name for name, (code, _, _) in kennel.items() if code} == {"missing"}
    mail = json.loads(gtui(town, "mail", "list", "--json").stdout)["mail"]
    bodies = {item["subject"]: item["body"].strip() for item in mail if item["subject"].startswith("hello")}
    assert bodies == {f"hello from {mode}": "a body read from the plugin's own stdin" for mode in ("require", "off")}
    listed = json.loads(gtui(town, "escalate", "list", "--json").stdout)["escalations"]
    assert sorted(item["subject"] for item in listed) == ["disk full on off", "disk full on require"]


def test_a_plugin_that_changed_its_environment_runs_its_gt_itself(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    gastown_plugin(town, "changed", """OUT="$GT_TOWN_ROOT/out"; mkdir -p "$OUT"
export GT_LEDGER_TIMEOUT=7
GTUI_THIN=require gt version >"$OUT/required" 2>&1 || echo "exit $?" >>"$OUT/required"
gt version >"$OUT/here"
""", gate='type = "manual"')
    assert run_plugin(town, "changed")["result"] == "success"
    assert (town / "out" / "required").read_text() == (
        "gt: error: GTUI_THIN=require: the kennel did not answer (another environment)\nexit 2\n")
    assert (town / "out" / "here").read_text().startswith("gt version ")


def test_a_call_gtui_hands_over_to_a_real_bd_runs_in_the_plugins_own_process(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    gastown_plugin(town, "asks-for-work", """OUT="$GT_TOWN_ROOT/out"; mkdir -p "$OUT"
set +e
GTUI_THIN=require bd list --status in_progress --json >"$OUT/out" 2>"$OUT/err"
echo $? >"$OUT/rc"
""", gate='type = "manual"')
    run_plugin(town, "asks-for-work")
    assert (town / "out" / "rc").read_text().strip() == "127"  # handed back, then handed over: no real bd on PATH here
    assert (town / "out" / "err").read_text() == "bd: error: gtui does not provide 'bd list' and no other bd is on PATH\n"


def test_only_a_process_of_a_run_the_kennel_holds_is_answered(tmp_path: Path) -> None:
    town = the_town(tmp_path)
    gastown_plugin(town, "sleeper", "sleep 30\n", gate='type = "manual"')
    started = gtui(town, "plugin", "run", "sleeper", "--detach", "--json")
    assert started.returncode == 0, started.stderr
    ledger = open_ledger(town / ".gtui" / "ledger.db")
    try:
        assert wait_for(lambda: any(run.data.get("token") for run in ledger.runs_in_flight() if run.status == "running"), 20)
        (run,) = [run for run in ledger.runs_in_flight() if run.status == "running"]
        path = door.socket_path(str(town.resolve()), door.hostname())
        key = door.environment_key(gtui_env())
        assert door.ask_shim(path, "gt", ["version"], key, __version__, "a-token-of-no-run") == "not a run of this kennel"
        # The run's real token, from a process that does not carry it (this test): refused all the same.
        assert door.ask_shim(path, "gt", ["version"], key, __version__, run.data["token"]) == "not a process of that run"
    finally:
        gtui(town, "plugin", "stop", run.ref if "run" in locals() else "sleeper")
        ledger.close()


class Counting:
    """An answerer that counts what it ran."""

    def __init__(self) -> None:
        self.ran = 0

    def refusal(self, argv: list[str]) -> str | None:
        return None

    def __call__(self, argv: list[str], gone: Any) -> tuple[int, str, str]:
        self.ran += 1
        return 0, "ran\n", ""


@pytest.fixture
def counting_kennel(tmp_path: Path) -> Any:
    town = gastown_town(tmp_path / "gt", "")
    answerer = Counting()
    house = Kennel(kennel_engine(town), answerer=answerer)
    house.open()
    house.start()
    try:
        yield house, answerer
    finally:
        house.close()


def test_an_asker_that_did_not_see_the_kennel_accept_in_time_gets_nothing_run_there(counting_kennel: Any) -> None:
    """The asker gives up after 200 ms and runs the command itself; a kennel that accepted meanwhile runs nothing."""
    house, answerer = counting_kennel
    request = door.request_line("command", ["x"], house.answers.key, __version__)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(house.where.socket)
        conn.sendall(request)
        assert conn.recv(100).startswith(door.ACCEPTED)  # accepted, but this asker had given up: it closes, no go
    time.sleep(0.5)
    assert answerer.ran == 0
    assert door.ask_command(house.where.socket, ["x"], house.answers.key, __version__) == {"code": 0, "out": b"ran\n", "err": b""}
    assert answerer.ran == 1


def test_the_go_comes_only_after_the_kennel_accepted(tmp_path: Path) -> None:
    """A kennel slower than 200 ms to accept: the asker runs the command itself and never says go."""
    path = str(tmp_path / "k.sock")
    heard: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)

        def accept_late() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                time.sleep(door.ACCEPT_SECONDS + 0.3)
                conn.settimeout(2)
                heard.append(conn.recv(10))  # what the asker said after its request: nothing, it closed
                with contextlib.suppress(OSError):
                    conn.sendall(door.ACCEPTED + b"\n")  # too late: nobody reads it

        serving = threading.Thread(target=accept_late)
        serving.start()
        assert door.ask_command(path, ["x"], "key", __version__) == "slow"
        serving.join(5)
    assert heard == [b""]  # closed: no go


def test_the_environment_a_plugins_call_was_checked_in_is_the_one_it_runs_in(tmp_path: Path) -> None:
    """The run may end between the check and the answer: the command runs in the environment read once, for the check."""
    from gtcore.dogs.kennel_answers import Answers

    env = {**gtui_env(), "GTUI_RUN_TOKEN": "tok-1", "GT_RUN_ID": "run-7"}
    asked: list[dict[str, str]] = []

    class Recording(Counting):
        def shim_refusal(self, tool: str, argv: list[str]) -> str | None:
            return None

        def shim(self, tool: str, argv: list[str], run_env: dict[str, str], streams: list[int], pid: int) -> int:
            asked.append(run_env)
            return 0

    kept = [env]  # the run's environment, for one read: the run ends right after

    answers = Answers(Recording(), lambda token: kept.pop() if kept and token == "tok-1" else None)
    plugin = subprocess.Popen(["sleep", "30"], env=env)
    try:
        from gtcore.dogs.processes import carries

        assert wait_for(lambda: carries(plugin.pid, "tok-1"), 10, "the plugin's process exec'd with its token")
        request = {"op": "shim", "tool": "gt", "argv": ["version"], "key": door.environment_key(env), "version": __version__,
                   "token": "tok-1"}
        why, call = answers.answer(request, [0, 1, 2], plugin.pid)
        assert why is None and call is not None
        assert call(lambda: False) == (0, "", "")
        assert asked == [env]
    finally:
        plugin.kill()
        plugin.wait()
