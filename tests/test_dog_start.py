"""How dogs start their children: off the loop thread, on starters, with every guarantee a run had when the loop
started it itself — its own session, stdin /dev/null, its output in its log, its own environment, a start that fails
ending ``failure`` with the reason, a run being started when the kennel stops still supervised and recorded.

Every kennel here runs inside the test's process, so the test can hold a start up (a log that is a FIFO nobody
reads yet), break it, and look at the thread each event comes from.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import add_plugin, gone, make_town, read_pid, runs, wait_for
from kennelkit import kennel_engine, served

from gtcore.core.events import Event, RunClaimed, RunFinished, RunStarted
from gtcore.dogs.kennel import Kennel
from gtcore.engine import Engine
from gtcore.model import Bead
from gtcore.town.layout import Town

MANUAL = 'type = "manual"'


@contextlib.contextmanager
def kennel(town: Path) -> Iterator[Kennel]:
    """A kennel for ``town`` in this process; closed at the end unless the test closed it."""
    house = Kennel(kennel_engine(town))
    house.open()
    try:
        yield house.start()
    finally:
        if house.pool is not None:
            house.close()


def run_to_end(engine: Engine, name: str, timeout: float = 30) -> Bead:
    queued = engine.run_plugin(name)
    return engine.wait_runs([queued.id], timeout=timeout)[queued.id]


def test_a_child_started_off_the_loop_leads_its_own_session_reads_dev_null_and_writes_its_log(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    directory = add_plugin(town, "alone", MANUAL,
                           "cut -d' ' -f1,5,6 /proc/$$/stat > ids.txt\n"  # pid, process group, session
                           "readlink /proc/$$/fd/0 > stdin.txt\n"
                           "echo to stdout\necho to stderr >&2\n")
    with served(town) as engine:
        ended = run_to_end(engine, "alone")
    assert ended.result == "success", ended.data
    pid, group, session = (directory / "ids.txt").read_text().split()
    assert pid == group == session, "the run must lead a session (and process group) of its own"
    assert (directory / "stdin.txt").read_text().strip() == "/dev/null"
    log = Path(str(ended.data["log"])).read_text()
    assert "to stdout" in log and "to stderr" in log


def test_runs_started_side_by_side_each_see_only_their_own_variables(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", "dogs = 4\n")
    (town / "alpha" / "plugins").mkdir(parents=True)
    script = 'printf "%s\\n" "$GT_RUN_ID" "$GTUI_RUN_TOKEN" "$GT_PLUGIN" "$GT_DOG" "$GT_RIG" > seen.txt\n'
    names = {f"town-{n}": "town" for n in range(6)} | {f"alpha-{n}": "alpha" for n in range(6)}
    directories = {name: add_plugin(town, name, MANUAL, script, where="plugins" if rig == "town" else "alpha/plugins")
                   for name, rig in names.items()}
    with served(town) as engine:
        queued = [engine.run_plugin(name) for name in names]  # twelve runs for four dogs: started four at a time
        ended = engine.wait_runs([run.id for run in queued], timeout=60)
    assert {run.result for run in ended.values()} == {"success"}
    for name, rig in names.items():
        (run,) = runs(town, name)
        seen = (directories[name] / "seen.txt").read_text().splitlines()
        assert seen == [run.ref, str(run.data["token"]), name, str(run.data["dog"]), "" if rig == "town" else rig], name
    assert len({str(run.data["token"]) for run in ended.values()}) == len(names)


def test_a_child_that_cannot_start_ends_failure_with_the_reason_and_frees_its_dog(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", 'dogs = 1\nagent_command = ["/nonexistent/agent-of-gtui"]\n')
    add_plugin(town, "triage", MANUAL, None, body="Sort the mail.\n")
    add_plugin(town, "after", MANUAL, "echo next\n")
    with served(town) as engine:
        failed = run_to_end(engine, "triage")
        after = run_to_end(engine, "after")
    assert failed.result == "failure"
    assert failed.data["reason"] == "cannot start /nonexistent/agent-of-gtui: No such file or directory"
    assert after.result == "success"  # the one dog was freed


def test_gtui_failing_while_starting_a_run_costs_that_run_and_not_its_dog(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", "dogs = 1\n")
    add_plugin(town, "broken", MANUAL, "echo never\n")
    add_plugin(town, "after", MANUAL, "echo next\n")
    engine = Engine(Town.locate(town))
    with kennel(town) as house:
        runner = house.engine.runner

        def broken(plugin: object) -> object:
            raise RuntimeError("a bug while starting")

        runner._command = broken  # type: ignore[method-assign]
        failed = run_to_end(engine, "broken")
        del runner._command
        after = run_to_end(engine, "after")
    engine.close()
    assert failed.result == "failure"
    assert failed.data["reason"] == "gtui could not run it: RuntimeError: a bug while starting"
    assert after.result == "success"


def test_a_runs_events_all_come_from_the_loop_in_their_order(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "told", MANUAL, "echo hi\n")
    engine = Engine(Town.locate(town))
    heard: list[tuple[type[Event], str]] = []
    with kennel(town) as house:
        house.engine.bus.subscribe(lambda event: heard.append((type(event), threading.current_thread().name)),
                                   RunClaimed, RunStarted, RunFinished)
        ended = run_to_end(engine, "told")
    engine.close()
    assert ended.result == "success"
    assert heard == [(RunClaimed, "dogs"), (RunStarted, "dogs"), (RunFinished, "dogs")]


def test_a_run_still_being_started_when_the_kennel_stops_is_stopped_and_recorded(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", 'dogs = 1\nkill_grace = "1s"\n')
    directory = add_plugin(town, "slow-start", MANUAL, "echo $$ > leader.pid\nsleep 30\n")
    engine = Engine(Town.locate(town))
    queued = engine.run_plugin("slow-start")
    log = Town.locate(town).runs_dir / f"{queued.ref}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(log)  # its starter blocks opening the log until someone reads it
    with kennel(town) as house:
        wait_for(lambda: queued.id in house.engine.runner.active, what="the kennel to take the run")
        closing = threading.Thread(target=house.close)
        closing.start()
        time.sleep(0.5)  # the kennel is closing, its loop turning, while the start is held up
        reader = os.open(log, os.O_RDONLY | os.O_NONBLOCK)  # lets the start go on
        try:
            closing.join(30)
            assert not closing.is_alive()
        finally:
            os.close(reader)
    (run,) = runs(town, "slow-start")
    engine.close()
    assert run.status == "closed" and run.result == "abandoned", run
    assert str(run.data["reason"]).startswith("stopped: "), run.data
    assert gone(read_pid(directory / "leader.pid")), "the child started as its kennel stopped outlived it"


def test_no_wake_up_reaches_a_descriptor_that_took_the_place_of_the_loops_pipe(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    with kennel(town) as house:
        pool = house.pool
        assert pool is not None
        number = pool._wake_write
        house.close()
    read, write = os.pipe()
    mine = [read, write]
    try:
        if number not in mine:
            with contextlib.suppress(OSError):
                os.fstat(number)
                pytest.skip("the number was taken by another descriptor meanwhile: nothing to test without clobbering it")
            os.dup2(write, number)  # a descriptor opened later gets the number the loop's pipe had
            mine.append(number)
        pool.look()  # a late wake-up (the socket thread, a sweeper) after the loop ended
        os.set_blocking(read, False)
        with contextlib.suppress(BlockingIOError):
            assert os.read(read, 16) == b"", "a wake-up was written to a descriptor that is not the loop's"
    finally:
        for fd in mine:
            os.close(fd)
