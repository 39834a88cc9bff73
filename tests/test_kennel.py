"""The kennel: one process per town and host runs every run; the commands that dispatch return at once.

Real processes throughout: ``gtui`` commands, the kennels they start (detached), ``run.sh`` plugins.
A long run is one that waits for a file the test touches (``HELD``), so nothing here sleeps for
its length.  Every kennel a test starts is stopped after it (the suite's autouse fixture).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from enginekit import (
    FINISHED_KEYS,
    add_plugin,
    gone,
    gtui,
    gtui_argv,
    gtui_env,
    kill_group,
    ledger,
    make_town,
    read_pid,
    runs,
    taken,
    wait_for,
)
from kennelkit import kennel_pid, kennel_pids, start_kennel

from gtcore.dogs.kennel import alive, ensure, place
from gtcore.town.layout import Town
from gtui.cli.dispatching import KENNEL_ARGV

MANUAL = 'type = "manual"'
HELD = "echo $$ > run.pid\nwhile [ ! -e release ]; do sleep 0.02; done\necho released\n"  # runs until the test touches release
SETTINGS = 'dogs = 2\nkill_grace = "1s"\n'


def closed(town: Path, run_id: int, timeout: float = 15.0) -> object:
    """The run once it is closed (fails after ``timeout``)."""
    return wait_for(lambda: (run := ledger(town).get(run_id)).status == "closed" and run, timeout, f"run-{run_id} to end")


def test_once_returns_while_its_run_goes_on_and_the_next_once_reports_it_finished_exactly_once(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    directory = add_plugin(town, "long", 'type = "cooldown"\nduration = "1h"', HELD, execution='timeout = "30s"')
    try:
        first = gtui(town, "--once", "--json")
        assert first.code == 0, first.err
        (entry,) = first.json()["plugins"]
        assert entry["dispatched"] and entry["run"]["status"] in ("queued", "running")
        assert first.json()["finished"] == []
        run = wait_for(lambda: taken(town, "long"), 10, "the kennel to take it")
        assert run.ref == entry["run"]["id"] and run.status == "running", "the command returned; the run goes on"

        during = gtui(town, "--once", "--json").json()
        assert during["finished"] == [] and during["plugins"][0]["gate"]["reason"] == f"running ({run.ref})"

        (directory / "release").touch()
        ended = closed(town, run.id)
        after = gtui(town, "--once", "--json")
        assert after.code == 0, after.err
        (finished,) = after.json()["finished"]
        assert set(finished) == FINISHED_KEYS
        assert (finished["id"], finished["plugin"], finished["rig"], finished["result"], finished["exit_code"]) == (
            run.ref, "long", "town", "success", 0)
        assert finished["finished_at"] and finished["duration_s"] == ended.data["duration_s"]
        assert gtui(town, "--once", "--json").json()["finished"] == [], "reported once"
    finally:
        (directory / "release").touch()


def test_two_once_commands_at_once_report_each_finished_run_to_exactly_one_of_them(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", "dogs = 4\n")
    names = [f"quick-{n}" for n in range(8)]
    for name in names:
        add_plugin(town, name, run_sh="echo done\n")
    assert gtui(town, "--once", "--wait", "--json").code == 0  # eight runs end; this one takes them
    ids = sorted(run.ref for name in names for run in runs(town, name))
    for name in names:  # eight more, ended after that --once
        assert gtui(town, "plugin", "run", name, "--force", "--json").code == 0
    fresh = sorted(run.ref for name in names for run in runs(town, name) if run.ref not in ids)
    barrier = threading.Barrier(3)
    reports: list[dict] = []

    def once() -> None:
        barrier.wait()
        reports.append(gtui(town, "--once", "--json").json())

    threads = [threading.Thread(target=once) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    reported = sorted(entry["id"] for report in reports for entry in report["finished"])
    assert reported == fresh, "every run that ended is reported once, to one of them, and none twice"


def test_ten_commands_racing_to_dispatch_start_exactly_one_kennel(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", "dogs = 10\n")
    names = [f"racer-{n}" for n in range(10)]
    for name in names:
        add_plugin(town, name, MANUAL, "echo raced\n")
    procs = [subprocess.Popen(gtui_argv(town, "plugin", "run", name, "--detach", "--json"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=gtui_env()) for name in names]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    pids = kennel_pids(town)
    assert len(pids) == 1, f"kennels running: {pids}"
    for name in names:
        (run,) = runs(town, name)
        assert closed(town, run.id).data["owner"]["pid"] == pids[0]  # type: ignore[attr-defined]
    log = place(Town.locate(town)).log.read_text()
    assert log.count(" serving ") == 1 and " not started: " not in log, log  # one kennel started at all, not nine giving up


def test_an_autostarted_kennel_lets_go_of_its_commands_pipes_and_terminal(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "quick", MANUAL, "echo quick\n")
    command = subprocess.Popen(gtui_argv(town, "plugin", "run", "quick", "--detach"), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=gtui_env())
    _, err = command.communicate(timeout=30)  # EOF on both pipes: nothing that outlives the command holds them
    assert command.returncode == 0, err
    kennel = kennel_pid(town)
    assert kennel is not None and not gone(kennel)
    where = place(Town.locate(town))
    targets = [os.readlink(f"/proc/{kennel}/fd/{fd}") for fd in (0, 1, 2)]
    assert targets == ["/dev/null", str(where.log), str(where.log)], targets
    assert os.getsid(kennel) == kennel, "a session of its own: a closing terminal's SIGHUP never reaches it"
    blocked = next(line for line in Path(f"/proc/{kennel}/status").read_text().splitlines() if line.startswith("SigBlk:"))
    assert int(blocked.split()[1], 16) == 0, "the signals plugin run held back while it queued are not held by the kennel"
    assert os.getppid() != kennel and _parent(kennel) != command.pid, "not the command's child: nothing for it to reap"


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def test_kennel_stop_stops_its_runs_and_records_them(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    directory = add_plugin(town, "long", MANUAL, HELD)
    queued = gtui(town, "plugin", "run", "long", "--detach", "--json").json()
    run = wait_for(lambda: taken(town, "long"), 10, "the kennel to take it")
    leader = read_pid(directory / "run.pid")
    kennel = kennel_pid(town)
    try:
        stopped = gtui(town, "kennel", "stop", "--json")
        assert stopped.code == 0, stopped.err
        assert stopped.json() == {"stopped": True, "draining": False, "pid": kennel, "host": run.data["owner"]["host"], "runs": 1}
        assert kennel_pid(town) is None
        ended = ledger(town).get(run.id)
        assert (ended.ref, ended.result) == (queued["id"], "abandoned")
        assert ended.data["reason"].startswith("stopped: the kennel was stopped (gtui kennel stop)")
        wait_for(lambda: gone(leader), 5, "the run's process to be gone")
        assert gtui(town, "kennel", "status", "--json").json()["kennels"] == []  # it said goodbye
        again = gtui(town, "kennel", "stop")
        assert (again.code, again.out.strip()) == (0, f"no kennel is running for {town.resolve()} on this host")
    finally:
        kill_group(leader)


def test_kennel_stop_drain_takes_nothing_new_and_lets_its_run_finish(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    directory = add_plugin(town, "long", MANUAL, HELD)
    add_plugin(town, "later", MANUAL, "echo later\n")
    gtui(town, "plugin", "run", "long", "--detach")
    run = wait_for(lambda: taken(town, "long"), 10, "the kennel to take it")
    kennel = kennel_pid(town)
    assert kennel is not None
    drained = gtui(town, "kennel", "stop", "--drain")
    assert drained.code == 0 and f"kennel pid {kennel} is draining" in drained.out, drained.err
    status = gtui(town, "kennel", "status", "--json").json()["kennels"]
    assert [(item["pid"], item["draining"], item["runs"]) for item in status] == [(kennel, True, [run.ref])]
    later = gtui(town, "plugin", "run", "later", "--detach", "--json").json()  # queued while it drains: not taken by it
    assert ledger(town).get(int(later["id"].split("-")[1])).status == "queued"
    (directory / "release").touch()
    assert closed(town, run.id).result == "success"  # type: ignore[attr-defined]
    wait_for(lambda: gone(kennel), 10, "the drained kennel to exit")
    # it left no run waiting behind it: with kennel = "auto", its successor took "later"
    done = closed(town, int(later["id"].split("-")[1]))
    assert done.result == "success" and done.data["owner"]["pid"] != kennel  # type: ignore[attr-defined]


def test_an_idle_autostarted_kennel_exits_and_the_next_command_starts_another(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS + 'kennel_idle = "1s"\n')
    add_plugin(town, "quick", MANUAL, "echo quick\n")
    first = gtui(town, "plugin", "run", "quick", "--json")
    assert first.code == 0 and first.json()["result"] == "success", first.err
    kennel = wait_for(lambda: ledger(town).get(int(first.json()["id"].split("-")[1])).data["owner"]["pid"], 5, "the owner")
    wait_for(lambda: gone(kennel), 15, "the idle kennel to exit")
    assert kennel_pid(town) is None
    again = gtui(town, "plugin", "run", "quick", "--json")
    assert again.code == 0 and again.json()["result"] == "success"
    assert ledger(town).get(int(again.json()["id"].split("-")[1])).data["owner"]["pid"] != kennel


def test_with_kennel_external_nothing_starts_one_the_run_waits_the_problem_says_why_and_queue_timeout_ends_it(
        tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS + 'kennel = "external"\nqueue_timeout = "1s"\n')
    add_plugin(town, "waits", run_sh="echo never\n", execution='notify_on_failure = true\nseverity = "high"')
    first = gtui(town, "--once", "--json")
    assert first.code == 0, first.err
    (entry,) = first.json()["plugins"]
    assert entry["dispatched"] and entry["run"]["status"] == "queued"
    said = [problem["reason"] for problem in first.json()["problems"]]
    assert any("no kennel is running" in reason and 'kennel = "external"' in reason for reason in said), said
    assert kennel_pids(town) == []
    assert ledger(town).get(int(entry["run"]["id"].split("-")[1])).status == "queued", "it waits"
    time.sleep(1.1)  # past queue_timeout
    later = gtui(town, "--once", "--json")
    assert later.json()["abandoned"] == [entry["run"]["id"]]
    (run,) = runs(town, "waits")
    assert run.result == "abandoned" and "no kennel took it within" in run.data["reason"]
    escalations = gtui(town, "escalate", "list", "--json").json()["escalations"]
    assert [(item["subject"], item["severity"]) for item in escalations] == [("plugin waits is failing", "high")]
    (finished,) = later.json()["finished"]
    assert (finished["id"], finished["result"], finished["escalation"]) == (run.ref, "abandoned", escalations[0]["id"])
    assert kennel_pids(town) == []


def test_a_foreground_kennel_refuses_a_second_and_runs_what_is_queued(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS + 'kennel = "external"\n')
    add_plugin(town, "quick", MANUAL, "echo quick\n")
    queued = gtui(town, "plugin", "run", "quick", "--detach", "--json").json()
    service = subprocess.Popen(gtui_argv(town, "kennel"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=gtui_env(), start_new_session=True)
    try:
        assert closed(town, int(queued["id"].split("-")[1])).result == "success"  # type: ignore[attr-defined]
        second = gtui(town, "kennel")
        assert second.code == 2 and f"a kennel is already running for {town.resolve()}" in second.err
        service.send_signal(signal.SIGTERM)
        _, err = service.communicate(timeout=20)
        assert service.returncode == 0 and "serving" in err and "stopped: the kennel was stopped by SIGTERM" in err, err
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()


def test_a_kennel_with_patrol_runs_a_town_alone(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS + 'patrol_interval = "1s"\n')
    add_plugin(town, "ticker", 'type = "cooldown"\nduration = "1h"', "echo tick\n")
    service = subprocess.Popen(gtui_argv(town, "kennel", "--patrol"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=gtui_env(), start_new_session=True)
    try:
        run = wait_for(lambda: next(iter(runs(town, "ticker")), None), 15, "the kennel's own patrol to queue it")
        assert closed(town, run.id).result == "success"  # type: ignore[attr-defined]
        (status,) = gtui(town, "kennel", "status", "--json").json()["kennels"]
        assert (status["pid"], status["alive"], status["patrol"]) == (service.pid, True, True)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(20)


def test_kennel_status_names_the_kennel_and_its_running_dog(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS + 'run_lease = "3s"\n')  # a heartbeat every second, not every ten
    directory = add_plugin(town, "long", MANUAL, HELD)
    gtui(town, "plugin", "run", "long", "--detach")
    try:
        run = wait_for(lambda: taken(town, "long"), 10, "the kennel to take it")
        wait_for(lambda: any(dog.get("state") == "working" for item in gtui(town, "kennel", "status", "--json").json()["kennels"]
                             for dog in item["dogs"]), 10, "a heartbeat naming the working dog")
        (status,) = gtui(town, "kennel", "status", "--json").json()["kennels"]
        assert set(status) == {"host", "pid", "alive", "started_at", "last_beat", "beat_age_s", "patrol", "draining", "dogs", "runs",
                               "problems"}
        assert (status["pid"], status["alive"], status["runs"], status["patrol"]) == (kennel_pid(town), True, [run.ref], False)
        assert [dog["name"] for dog in status["dogs"]] == ["rex", "fido"]
        human = gtui(town, "kennel", "status")
        assert human.code == 0 and "alive" in human.out and run.ref in human.out
        dogs = gtui(town, "dog", "list", "--json").json()["dogs"]
        other = "fido" if run.data["dog"] == "rex" else "rex"
        expected = [(run.data["dog"], "working", run.ref), (other, "idle", None)]
        assert [(dog["name"], dog["state"], dog["run_id"]) for dog in dogs] == expected
    finally:
        (directory / "release").touch()


@pytest.mark.parametrize("detach", [True, False])
def test_plugin_run_detach_returns_with_the_id_and_without_it_follows_to_the_result(tmp_path: Path, detach: bool) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "chatty", MANUAL, "echo one\necho two\nexit 3\n")
    done = gtui(town, "plugin", "run", "chatty", *(["--detach"] if detach else []))
    (run,) = runs(town, "chatty")
    if detach:
        assert done.code == 0 and done.out.startswith(f"{run.ref} queued: chatty"), done.out
    else:
        assert done.code == 1, done.err
        assert "chatty | one\nchatty | two\n" in done.out and "failure" in done.out
    assert closed(town, run.id).result == "failure"  # type: ignore[attr-defined]


def test_a_broken_kennel_socket_request_is_answered_and_changes_nothing(tmp_path: Path) -> None:
    """The socket speaks one JSON line; anything else is an error answer, never a stop."""
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "quick", MANUAL, "echo quick\n")
    assert gtui(town, "plugin", "run", "quick").code == 0
    where = place(Town.locate(town))
    for request in (b"not json\n", b'{"op": "explode"}\n', b"[1, 2]\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            conn.connect(where.socket)
            conn.sendall(request)
            conn.shutdown(socket.SHUT_WR)
            answer = json.loads(conn.recv(4096).split(b"\n")[0])
        assert "error" in answer, answer
    assert kennel_pid(town) is not None
    assert oct(os.stat(where.socket).st_mode & 0o777) == "0o600"


def test_an_idle_kennel_that_finds_work_at_its_last_look_stays_and_holds_its_lock(tmp_path: Path) -> None:
    """Kennel._let_go: the lock is let go, then the queue read; a run queued before that read keeps the kennel."""
    town = make_town(tmp_path / "town", SETTINGS + 'kennel_idle = "1h"\n')
    add_plugin(town, "late", MANUAL, "echo late\n")
    house = start_kennel(town, autostarted=True)
    assert house is not None
    where = place(Town.locate(town))
    house.pool.shutdown()  # its dogs take nothing: the run stays queued for the kennel's last look
    assert house.pool.join(5)
    ledger(town).claim_run("late", "town")  # a command that saw the kennel alive queued this, and woke nobody
    assert house._let_go() is False, "it found work queued for it: it must not exit"
    assert alive(where) is not None and alive(where)["pid"] == os.getpid(), "and it holds the town again"
    ledger(town).close_run(runs(town, "late")[0].id, "abandoned")
    assert house._let_go() is True, "nothing queued: it may go"
    assert alive(where) is None


def test_ensure_called_at_once_from_ten_threads_starts_one_kennel(tmp_path: Path) -> None:
    """kennel.ensure's spawn lock: the alive-check and the start are one step, so ten callers at the same instant start
    one kennel (without the lock each sees none alive, and nine kennels start only to find the town taken)."""
    town = make_town(tmp_path / "town", SETTINGS)
    located = Town.locate(town)
    barrier = threading.Barrier(10)
    answers: list[str | None] = []

    def call() -> None:
        barrier.wait()
        answers.append(ensure(located, KENNEL_ARGV))

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [None] * 10
    assert len(kennel_pids(town)) == 1
    log = place(located).log.read_text()
    assert log.count(" serving ") == 1 and " not started: " not in log, log
