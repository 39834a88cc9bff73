"""A result is never lost and no clock is trusted: disks that fill or fail read-only under a run, a
PostgreSQL server killed mid-run, clocks stepped a day ahead or two hours back while a run is live,
an owner frozen past its lease.

Each test runs the real ``gtui`` and the kennel it starts, with a real fault (see faultkit), and asserts
what the issue asks of every one: the ledger ends with what the plugin did (never ``abandoned`` for a
failure that is not the run's), no other plugin's run changes, and the command says what it could not
record in one line and exits 2.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import add_plugin, gone, gtui, gtui_env, gtui_start, make_town, one_error_line, wait_for
from faultkit import Clock, OwnPostgres, failing_disk, fill, kill_token_holders, sweep_faketime, tmpfs, token_holders
from kennelkit import kennel_pid, stop_kennels_under

from gtcore.core.errors import LedgerError
from gtcore.dogs import recovery
from gtcore.model import Bead
from gtcore.storage import open_ledger
from gtcore.storage.testing import postgres_schema
from gtcore.town.layout import Town

SETTINGS = 'dogs = 2\nkill_grace = "1s"\n'
LEASED = SETTINGS + 'run_lease = "2s"\n'  # a lease short enough to run out while a test waits
DUE = 'type = "cooldown"\nduration = "1h"'  # open until it has run, then shut for an hour
MANUAL = 'type = "manual"'
NOT_RECORDED = "not yet recorded; kept in "


@pytest.fixture(autouse=True)
def _no_journal_outlives_its_test(tmp_path: Path) -> Iterator[None]:
    """The recovery journal lives outside the test's directory (in /dev/shm): what a test left there goes with it."""
    yield
    for town in tmp_path.glob("*/settings"):
        shutil.rmtree(recovery.directory(Town(town.parent)), ignore_errors=True)


def held(gates: Path, name: str, exit_code: int = 0) -> str:
    """A run.sh that waits until the test opens its gate (a file outside the town), says it did its work, and exits."""
    return f'while [ ! -e "{gates / name}" ]; do sleep 0.02; done\necho "{name} did its work"\nexit {exit_code}\n'


def release(gates: Path, *names: str) -> None:
    for name in names:
        (gates / name).touch()


def book(town: Path) -> list[Bead]:
    """Every run on the town's ledger, oldest first, read without writing anything (the disk may be full)."""
    ledger = open_ledger(town / ".gtui" / "ledger.db", readonly=True)
    try:
        return sorted((run for name in ("hog", "other", "steady", "slow") for run in ledger.runs(name, limit=None)),
                      key=lambda run: run.id)
    finally:
        ledger.close()


def run_of(town: Path, name: str) -> Bead:
    (run,) = [run for run in book(town) if run.plugin == name]
    return run


def taken(town: Path, *names: str) -> bool:
    """Every one of ``names`` has its run taken by a kennel (running); not yet while there is no ledger."""
    try:
        status = {run.plugin: run.status for run in book(town)}
    except LedgerError:
        return False
    return all(status.get(name) == "running" for name in names)


def recorded(town: Path, name: str, result: str, exit_code: int | None) -> Bead:
    """The run of ``name`` once the ledger holds it closed; it must be ``result`` with ``exit_code``."""
    run = wait_for(lambda: next((run for run in book(town) if run.plugin == name and run.status == "closed"), None), 30,
                   f"{name}'s end on the ledger")
    assert (run.result, run.data.get("exit_code")) == (result, exit_code), run.data
    return run


def unrecorded_line(err: str, run: Bead) -> str:
    """The one line of ``err`` that says ``run`` ended but is not recorded."""
    lines = [line for line in err.splitlines() if f"{run.ref} {run.plugin} ended " in line and NOT_RECORDED in line]
    assert len(lines) == 1, err
    return lines[0]


def journal(town: Path) -> list[recovery.Entry]:
    return recovery.entries(Town(town))


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# -- disks ----------------------------------------------------------------------------------------------------------


def test_a_disk_that_fills_during_a_patrol_loses_neither_result_and_records_both_once_it_has_room(tmp_path: Path) -> None:
    town, gates = make_town(tmp_path / "town", SETTINGS), tmp_path / "gates"
    gates.mkdir()
    add_plugin(town, "hog", DUE, held(gates, "hog"))
    add_plugin(town, "other", DUE, held(gates, "other", exit_code=3))
    with tmpfs(town / ".gtui", "2m"):
        patrol = gtui_start(town, "--once", "--wait", "--json")
        wait_for(lambda: taken(town, "hog", "other"), 15, "both runs taken")
        filler = fill(town / ".gtui")
        release(gates, "hog", "other")
        out, err = finish(patrol)

        assert patrol.returncode == 2, err  # not 0 with two results printed as if recorded
        hog, other = book(town)
        assert (hog.status, other.status) == ("running", "running")  # the disk refused both ends
        for run, result in ((hog, "success"), (other, "failure")):
            line = unrecorded_line(err, run)
            assert "disk full" in line and f"ended {result}, {NOT_RECORDED}" in line, line
        statuses = {item["name"]: item["run"]["status"] for item in json.loads(out)["plugins"]}
        assert statuses == {"hog": "running", "other": "running"}  # never "closed" with a result the ledger lacks
        assert sorted(entry.ref for entry in journal(town)) == sorted([hog.ref, other.ref])

        filler.unlink()  # room again: the kennel, which kept retrying, writes both
        recorded(town, "hog", "success", 0)
        recorded(town, "other", "failure", 3)
        wait_for(lambda: not journal(town), 10, "the journal to empty")
        after = gtui(town, "--once", "--json")
        assert after.json()["abandoned"] == []
        assert [(run.plugin, run.result) for run in book(town)] == [("hog", "success"), ("other", "failure")]


def test_a_disk_filled_by_the_run_itself_keeps_its_result_past_its_kennel_for_the_next_patrol(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "steady", MANUAL, "echo steady\n")
    add_plugin(town, "hog", MANUAL, f'dd if=/dev/zero of="{town}/.gtui/filler" bs=4k 2>/dev/null\necho "filled the disk"\n')
    with tmpfs(town / ".gtui", "2m"):
        assert gtui(town, "plugin", "run", "steady", "--json").code == 0
        (steady,) = book(town)

        done = gtui(town, "plugin", "run", "hog", "--json")  # its own output fills the disk as it ends: its close is refused
        line = one_error_line(done, "disk full", NOT_RECORDED)
        hog = run_of(town, "hog")
        assert unrecorded_line(done.err, hog) == line
        assert "ended success" in line
        (entry,) = journal(town)
        assert (entry.ref, entry.result, entry.data["exit_code"]) == (hog.ref, "success", 0)

        owner = kennel_pid(town)
        assert owner is not None
        os.kill(owner, signal.SIGKILL)  # the kennel that kept it dies before the disk has room again
        wait_for(lambda: gone(owner), 10, "the kennel to die")
        (town / ".gtui" / "filler").unlink()

        patrol = gtui(town, "--once", "--json")  # any later patrol replays the journal before it judges a run abandoned
        assert patrol.code == 0, patrol.err
        assert patrol.json()["abandoned"] == []
        assert not journal(town)
        assert run_of(town, "hog").result == "success"
        assert run_of(town, "steady") == steady  # untouched, to the last field


def test_a_disk_that_fails_read_only_under_a_run_keeps_its_result_until_it_is_writable_again(tmp_path: Path) -> None:
    town, gates = make_town(tmp_path / "town", SETTINGS), tmp_path / "gates"
    gates.mkdir()
    add_plugin(town, "hog", MANUAL, held(gates, "hog"))
    with failing_disk(town / ".gtui") as disk:
        follower = gtui_start(town, "plugin", "run", "hog", "--json")
        wait_for(lambda: taken(town, "hog"), 15, "the run taken")
        os.sync()  # the run's start reaches the disk, as any run older than the kernel's writeback delay has
        disk.fail()  # the kernel turns the disk read-only under the kennel's open ledger
        release(gates, "hog")
        out, err = finish(follower)
        assert follower.returncode == 2, err
        assert err.startswith("gtui: error: ") and len(err.splitlines()) == 1, err
        assert "read-only file system" in err and "hog ended success, " + NOT_RECORDED in err, err
        assert "check permissions" not in err
        assert set(json.loads(out)) == {"error"}

        stop_kennels_under(tmp_path)  # the kennel lets go of the disk (its result stays in the journal) so it can be checked
        disk.repair()
        patrol = gtui(town, "--once", "--json")
        assert patrol.code == 0, patrol.err
        assert patrol.json()["abandoned"] == []
        recorded(town, "hog", "success", 0)
        assert not journal(town)


def test_a_result_for_a_run_the_ledger_lost_is_set_aside_and_said_once(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "steady", MANUAL, "echo steady\n")
    add_plugin(town, "hog", MANUAL, f'dd if=/dev/zero of="{town}/.gtui/filler" bs=4k 2>/dev/null\necho "filled the disk"\n')
    with tmpfs(town / ".gtui", "2m"):
        assert gtui(town, "plugin", "run", "steady").code == 0
        stop_kennels_under(tmp_path)
        older = (town / ".gtui" / "ledger.db").read_bytes()  # a backup taken before hog ran
        assert gtui(town, "plugin", "run", "hog").code == 2
        (entry,) = journal(town)
        stop_kennels_under(tmp_path)
        (town / ".gtui" / "filler").unlink()
        for name in ("ledger.db-wal", "ledger.db-shm"):
            (town / ".gtui" / name).unlink(missing_ok=True)
        (town / ".gtui" / "ledger.db").write_bytes(older)  # the ledger restored from it: hog's run is not on it

        first = gtui(town, "--once", "--json")
        assert first.code == 2, first.err
        (line,) = [problem["reason"] for problem in first.json()["problems"] if entry.ref in problem["reason"]]
        lost = recovery.directory(Town(town)) / "lost" / f"{entry.ref}.json"
        assert f"the ledger has no {entry.ref}" in line and f"hog ended success, which it cannot record; kept in {lost}" in line
        assert json.loads(lost.read_text())["result"] == "success"  # kept for a person, never replayed again
        assert not journal(town)
        second = gtui(town, "--once", "--json")
        assert second.code == 0, second.err
        assert [run.plugin for run in book(town)] == ["steady"]


# -- a database server killed -------------------------------------------------------------------------------------


def test_a_postgresql_server_killed_mid_run_and_back_within_seconds_loses_no_result(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server = OwnPostgres(tmp_path / "postgres")
    try:
        monkeypatch.setenv("GT_LEDGER_URL", postgres_schema(server.uri, "recovery"))
        town, gates = make_town(tmp_path / "town", SETTINGS), tmp_path / "gates"
        gates.mkdir()
        add_plugin(town, "hog", DUE, held(gates, "hog"))
        add_plugin(town, "other", MANUAL, held(gates, "other", exit_code=3))
        bystander = gtui_start(town, "plugin", "run", "other", "--json")
        patrol = gtui_start(town, "--once", "--wait", "--json")
        wait_for(lambda: taken(town, "hog", "other"), 15, "both runs taken")

        server.kill()
        release(gates, "hog")  # hog ends while the server is gone
        out, err = finish(patrol)
        hog_entry = wait_for(lambda: next((entry for entry in journal(town) if entry.plugin == "hog"), None), 10, "the journal")
        server.start()

        assert patrol.returncode == 2, err
        assert f"{hog_entry.ref} hog ended success, {NOT_RECORDED}" in err and "cannot reach the server" in err, err
        (said,) = [item["run"] for item in json.loads(out)["plugins"] if item["name"] == "hog"]
        assert said["status"] != "closed" and said["exit_code"] is None, said  # never a result the ledger lacks
        hog = recorded(town, "hog", "success", 0)  # the kennel's retry, once the server is back
        assert hog.ref == hog_entry.ref
        assert run_of(town, "other").status == "running"  # the other plugin's run rode out the outage
        release(gates, "other")
        bystander_out, bystander_err = finish(bystander)
        assert bystander.returncode == 1, bystander_err
        assert json.loads(bystander_out)["result"] == "failure"
        recorded(town, "other", "failure", 3)
        assert gtui(town, "--once", "--json").json()["abandoned"] == []
    finally:
        stop_kennels_under(tmp_path)
        server.stop()


# -- clocks -------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _no_faketime_left() -> Iterator[None]:
    """What libfaketime leaves in /dev/shm for the processes the clock tests killed goes with them (swept once the
    module is done, when even the last of them is reaped)."""
    yield
    sweep_faketime()
    time.sleep(0.3)  # a process killed last may still be reaped
    sweep_faketime()


def clock_env(tmp_path: Path, name: str, offset: str) -> tuple[Clock, dict[str, str]]:
    clock = Clock(tmp_path / f"{name}.clock")
    clock.step(offset)
    return clock, clock.env(gtui_env())


def test_clock_steps_either_way_kill_no_living_run_and_keep_no_dead_one(tmp_path: Path) -> None:
    town, gates = make_town(tmp_path / "town", SETTINGS), tmp_path / "gates"
    gates.mkdir()
    add_plugin(town, "hog", DUE, held(gates, "hog"))
    kennel_clock, kennel_env = clock_env(tmp_path, "kennel", "+0")
    _, behind = clock_env(tmp_path, "behind", "-2h")
    _, ahead = clock_env(tmp_path, "ahead", "+1d")

    follower = gtui_start(town, "plugin", "run", "hog", "--json", env=kennel_env)  # the kennel it starts runs on that clock
    wait_for(lambda: taken(town, "hog"), 15, "the run taken")
    kennel_clock.step("+1d")  # the owner's clock jumps a day mid-run, as under an NTP step
    for env in (behind, ahead, kennel_env):
        patrol = gtui(town, "--once", "--json", env=env)
        assert patrol.code == 0, patrol.err
        report = patrol.json()
        assert report["abandoned"] == [], report
        assert [item["dispatched"] for item in report["plugins"]] == [False]  # one run in flight: never a second
    kennel_clock.step("-2h")
    assert gtui(town, "--once", "--json", env=ahead).json()["abandoned"] == []
    release(gates, "hog")
    out, err = finish(follower)
    assert follower.returncode == 0, err
    run = recorded(town, "hog", "success", 0)
    assert json.loads(out)["id"] == run.ref
    assert 0 <= run.data["duration_s"] < 60  # measured on the monotonic clock, not from one wall clock to another

    (gates / "hog").unlink()
    assert gtui(town, "plugin", "run", "hog", "--detach", env=kennel_env).code == 0
    wait_for(lambda: taken(town, "hog"), 15, "the second run taken")
    second = book(town)[-1]
    owner = kennel_pid(town)
    assert owner is not None
    os.kill(owner, signal.SIGKILL)  # now the owner dies: a patrol whose clock is two hours behind must not keep its run
    kill_token_holders(second.data["token"])
    patrol = gtui(town, "--once", "--json", env=behind)
    assert patrol.json()["abandoned"] == [second.ref]
    assert book(town)[-1].result == "abandoned"


def test_a_command_following_a_run_whose_kennel_is_killed_ends_with_the_run_abandoned(tmp_path: Path) -> None:
    town, gates = make_town(tmp_path / "town", SETTINGS), tmp_path / "gates"
    gates.mkdir()
    add_plugin(town, "slow", MANUAL, held(gates, "slow"))
    follower = gtui_start(town, "plugin", "run", "slow", "--json")
    wait_for(lambda: taken(town, "slow"), 15, "the run taken")
    run = run_of(town, "slow")
    owner = kennel_pid(town)
    assert owner is not None
    os.kill(owner, signal.SIGKILL)
    kill_token_holders(run.data["token"])
    out, err = finish(follower, timeout=30)  # no patrol runs meanwhile: the command itself sees its kennel gone
    assert follower.returncode == 1, err
    said = json.loads(out)
    assert (said["id"], said["result"]) == (run.ref, "abandoned")
    assert said["reason"].startswith(f"owner process {owner} on ") and "ended before the run did" in said["reason"]


def test_a_host_whose_clock_is_skewed_judges_leases_on_the_database_s_clock(tmp_path: Path, postgres_server: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GT_LEDGER_URL", postgres_schema(postgres_server, "skew_" + os.urandom(6).hex()))
    town, gates = make_town(tmp_path / "town", LEASED), tmp_path / "gates"
    gates.mkdir()
    add_plugin(town, "hog", MANUAL, held(gates, "hog"))
    follower = gtui_start(town, "plugin", "run", "hog", "--json")
    wait_for(lambda: taken(town, "hog"), 15, "the run taken")
    for offset in ("+1d", "-2h"):
        _, env = clock_env(tmp_path, "elsewhere" + offset, offset)
        patrol = gtui(town, "--once", "--json", env={**env, "GT_HOST": "elsewhere"})
        assert patrol.json()["abandoned"] == [], f"a host {offset} took a living run"
    release(gates, "hog")
    finish(follower)
    assert follower.returncode == 0
    recorded(town, "hog", "success", 0)


def test_an_event_emitted_after_the_clock_stepped_back_opens_its_gate(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "steady", 'type = "event"\non = "pushed"', "echo steady\n")
    assert gtui(town, "--once", "--wait", "--event", "pushed", "--json").code == 0
    (first,) = book(town)
    assert first.result == "success"

    _, behind = clock_env(tmp_path, "behind", "-2h")
    assert gtui(town, "event", "emit", "pushed", env=behind).code == 0  # stamped two hours before the run it follows
    patrol = gtui(town, "--once", "--wait", "--json")
    (item,) = patrol.json()["plugins"]
    assert item["dispatched"], item["gate"]
    assert [run.result for run in book(town)] == ["success", "success"]


# -- an owner frozen past its lease ---------------------------------------------------------------------------------


def test_an_owner_frozen_past_its_lease_loses_its_run_to_another_host_and_stops_it_when_it_wakes(tmp_path: Path) -> None:
    town, gates = make_town(tmp_path / "town", LEASED), tmp_path / "gates"
    gates.mkdir()
    add_plugin(town, "steady", MANUAL, "echo steady\n")
    add_plugin(town, "slow", MANUAL, held(gates, "slow"))
    assert gtui(town, "plugin", "run", "steady").code == 0
    follower = gtui_start(town, "plugin", "run", "slow", "--json")
    wait_for(lambda: taken(town, "slow"), 15, "the run taken")
    run = run_of(town, "slow")
    owner = kennel_pid(town)
    assert owner is not None
    frozen = [owner, follower.pid]
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        elsewhere = {**gtui_env(), "GT_HOST": "elsewhere"}
        wait_for(lambda: run.ref in gtui(town, "--once", "--json", env=elsewhere).json()["abandoned"], 20,
                 "another host to find the lease run out")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    out, err = finish(follower)
    assert follower.returncode == 1, err  # the result it follows is the recorded one, whatever it saw before it froze
    assert json.loads(out)["result"] == "abandoned"
    wait_for(lambda: not token_holders(run.data["token"]), 10, "the woken kennel to stop the run it no longer holds")
    release(gates, "slow")
    assert run_of(town, "slow").result == "abandoned"
    assert run_of(town, "steady").result == "success"
