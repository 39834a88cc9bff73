"""Patrols across processes: two ``--once`` racing on one town, a patrol killed mid-run,
the dispatch queue's order with more open gates than dogs, and the patrol's events.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from enginekit import (
    REPORT_KEYS,
    add_plugin,
    gone,
    gtui,
    gtui_start,
    kill_group,
    ledger,
    make_town,
    read_pid,
    running,
    runs,
    taken,
    wait_for,
)
from kennelkit import kennel_pids, start_kennel

from gtcore.core.events import Event, GateChanged, PatrolFinished
from gtcore.dogs.kennel import Kennel
from gtcore.engine import Engine
from gtcore.model import Bead
from gtcore.patrol.cycle import PatrolReport
from gtcore.town.layout import Town

pytestmark = pytest.mark.usefixtures("storage")  # every test here runs against each storage backend

RACE_PLUGINS = ("alpha", "bravo", "charlie", "delta")


RACE_ROUNDS = 6  # each round a new town racing two patrols; the rounds together must see the patrols overlap


def test_two_once_patrols_started_together_run_each_open_plugin_exactly_once(tmp_path: Path) -> None:
    overlaps = 0  # the loser saw the winner's run in flight, or was refused at claim time: the patrols really raced
    for iteration in range(RACE_ROUNDS):
        town = make_town(tmp_path / f"town{iteration}", "dogs = 4\n")
        names = [f"{name}-{iteration}" for name in RACE_PLUGINS]  # a name of its own per round: on PostgreSQL the rounds share one ledger
        for name in names:
            add_plugin(town, name, run_sh="sleep 0.1\n")
        procs = [gtui_start(town, "--once", "--wait", "--json") for _ in range(2)]
        outputs = [proc.communicate(timeout=60) for proc in procs]
        for proc, (_, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
        reports = [report_json(out) for out, _ in outputs]
        for name in names:
            on_ledger = runs(town, name)
            assert [run.result for run in on_ledger] == ["success"], f"iteration {iteration}: {name} ran {len(on_ledger)} times"
            reported = [entry["run"] for report in reports for entry in report["plugins"] if entry["name"] == name and entry["run"]]
            assert [run["id"] for run in reported] == [on_ledger[0].ref], f"iteration {iteration}: {name}"
            reasons = [entry["gate"]["reason"] for report in reports for entry in report["plugins"] if entry["name"] == name]
            overlaps += any(reason.startswith("running (") or reason.startswith("queued (") or "not queued" in reason
                            or "already queued" in reason for reason in reasons)
    assert overlaps, "the two patrols never overlapped, so the race was not exercised"


def report_json(out: str) -> dict:
    """A ``--once --json`` report, with exactly the documented top-level keys."""
    report = json.loads(out)
    assert set(report) == REPORT_KEYS
    return report


def test_a_kennel_killed_mid_run_leaves_the_run_abandoned_for_the_next_patrol_and_no_process_behind(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "quick", run_sh="echo quick\n")
    slow_dir = add_plugin(town, "slow", 'type = "event"\non = "go"', "echo $$ > run.pid\nsleep 30\n")

    first = gtui(town, "--once", "--wait", "--json")
    assert first.code == 0, first.err
    (quick_run,) = runs(town, "quick")
    assert quick_run.result == "success"

    dispatched = gtui(town, "--once", "--json", "--event", "go")
    assert dispatched.code == 0, dispatched.err
    in_flight = wait_for(lambda: taken(town, "slow"), 15, "the kennel to take the slow run")
    script = read_pid(slow_dir / "run.pid")
    try:
        assert in_flight.data["token"]  # what the next patrol finds the run's processes by, recorded with the take
        (kennel,) = kennel_pids(town)
        assert in_flight.data["owner"]["pid"] == kennel
        os.kill(kennel, signal.SIGKILL)
        wait_for(lambda: gone(kennel), 5, "the kennel to die")
        assert running(town, "slow") is not None  # nobody closed it: its owner died without a word

        after = gtui(town, "--once", "--json")
        assert after.code == 1, after.err  # an abandoned run is among what finished
        report = after.json()
        assert report["abandoned"] == [in_flight.ref]
        (slow_run,) = runs(town, "slow")
        assert (slow_run.id, slow_run.status, slow_run.result) == (in_flight.id, "closed", "abandoned")
        assert f"owner process {kennel}" in slow_run.data["reason"]
        assert "its leftover processes were killed" in slow_run.data["reason"]
        wait_for(lambda: gone(script), 5, "the orphaned run.sh to be killed")  # no overlap with a next run
        assert runs(town, "quick") == [quick_run]  # the earlier run is untouched
        assert ledger(town).runs_in_flight() == []
        slow_entry = next(entry for entry in report["plugins"] if entry["name"] == "slow")
        assert slow_entry["dispatched"] is False  # the event came before the abandoned run: no second run
        assert [entry["id"] for entry in report["finished"]] == [in_flight.ref]

        again = gtui(town, "--once", "--json")
        assert again.json()["abandoned"] == [] and again.json()["finished"] == []  # closed once, reported once
    finally:
        kill_group(script)  # run.sh leads its own process group and outlived the killed kennel


def test_more_open_gates_than_dogs_run_longest_waiting_first(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", "dogs = 2\n")
    names = [f"p{index:02d}" for index in range(20)]
    for name in names:
        add_plugin(town, name, run_sh='echo "$GT_PLUGIN" >> "$GT_TOWN/order.txt"\nsleep 0.1\n')
    # Gate-open order deliberately unlike discovery (alphabetical) order.
    waiting = names[:]
    random.Random(7).shuffle(waiting)
    now = time.time()
    book = ledger(town)
    previous = {}
    for rank, name in enumerate(waiting):
        started = now - 2 * 3600 - (len(waiting) - rank) * 60  # cooldown 1h: gates opened an hour later, a minute apart
        run = book.claim_run(name, "town", now=started)
        book.close_run(run.id, "success", now=started + 1)
        previous[name] = run.id

    done = gtui(town, "--once", "--wait", "--json")
    assert done.code == 0, done.err
    order = (town / "order.txt").read_text().split()
    assert sorted(order) == names  # every one ran, once
    assert set(order[:2]) == set(waiting[:2]), f"first runs {order[:2]}, longest waiting {waiting[:2]}"
    claimed = sorted((run for name in names for run in runs(town, name) if run.id != previous[name]), key=lambda run: run.id)
    claim_order = [run.plugin for run in claimed]
    # two dogs may swap neighbours, but nothing jumps the queue further than that
    for rank, name in enumerate(waiting):
        assert abs(claim_order.index(name) - rank) <= 1, f"claim order {claim_order}, queue {waiting}"
        assert abs(order.index(name) - rank) <= 2, f"start order {order}, queue {waiting}"


def test_queue_order_holds_when_subscribers_are_slow(tmp_path: Path) -> None:
    """A UI hands each event to its own loop, which takes time: idle dogs must not grab plugins in discovery order meanwhile."""
    town = make_town(tmp_path / "town", "dogs = 1\n")
    names = [f"p{index}" for index in range(6)]
    for name in names:
        add_plugin(town, name, run_sh='echo "$GT_PLUGIN" >> "$GT_TOWN/order.txt"\n')
    waiting = names[::-1]  # p5 has waited longest
    book, now = ledger(town), time.time()
    for rank, name in enumerate(waiting):
        run = book.claim_run(name, "town", now=now - 2 * 3600 - (len(waiting) - rank) * 60)
        book.close_run(run.id, "success", now=run.created_at + 1)
    engine = Engine(Town.locate(town))
    start_kennel(town)
    engine.bus.subscribe(lambda event: time.sleep(0.01) if isinstance(event, GateChanged) else None)
    try:
        engine.patrol_once(wait=True)
    finally:
        engine.close()
    assert (town / "order.txt").read_text().split() == waiting  # one dog: exactly the gate-open order


def test_patrol_events_and_gate_changes_only_on_change(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "hand", 'type = "manual"')
    add_plugin(town, "cool", 'type = "cooldown"\nduration = "1h"', "echo cool\n")
    engine = Engine(Town.locate(town))
    start_kennel(town)
    seen: list[Event] = []
    engine.bus.subscribe(seen.append)

    def patrol(now: float | None = None) -> tuple[PatrolReport, list[GateChanged]]:
        seen.clear()
        report = engine.patrol_once(wait=True, now=now)
        finished = [event for event in seen if isinstance(event, PatrolFinished)]
        assert [event.report for event in finished] == [report]
        assert isinstance(seen[-1], PatrolFinished)  # the last word of a patrol
        return report, [event for event in seen if isinstance(event, GateChanged)]

    try:
        report, changes = patrol()
        assert {(change.plugin, change.open) for change in changes} == {("hand", False), ("cool", True)}
        cool = next(item for item in report.plugins if item.plugin.name == "cool")
        assert cool.run is not None and cool.run.result == "success"

        report, changes = patrol()
        assert [(change.plugin, change.open) for change in changes] == [("cool", False)]  # it ran: now cooling down
        assert changes[0].next_open_at is not None and "cooling down" in changes[0].reason

        _, changes = patrol()
        assert changes == []  # nothing changed
        _, changes = patrol(time.time() + 90)
        assert changes == [], [change.reason for change in changes]  # only the clock moved: the gate is as it was

        engine.set_paused("hand", True, "testing")
        _, changes = patrol()
        assert [(change.plugin, change.open, change.reason) for change in changes] == [("hand", False, "paused by operator: testing")]

        _, changes = patrol(time.time() + 3700)
        assert [(change.plugin, change.open) for change in changes] == [("cool", True)]  # cooldown over
    finally:
        engine.close()


def test_a_condition_answer_is_stale_once_its_plugin_ran(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "ready", 'type = "condition"\ncheck = "echo ready"')
    add_plugin(town, "waiting", 'type = "condition"\ncheck = "echo not yet; exit 1"')
    engine = Engine(Town(town))
    start_kennel(town)
    try:
        report = engine.patrol_once(wait=True)
        assert [item.run.result for item in report.plugins if item.run] == ["success"]
        current = engine.patrol.current_checks(engine.ledger.plugin_summary())
    finally:
        engine.close()
    assert set(current) == {"ready", "waiting"} and current["waiting"].first_line == "not yet"
    decided = engine.gate_decisions(engine.plugins().plugins, engine.summary(), [], {}, time.time())
    assert not decided["ready"].open  # "ready" ran after its check: the control room must not still call it open
    assert decided["ready"].reason.startswith("last check (") and "passed: ready; its run started since" in decided["ready"].reason
    assert decided["waiting"].reason == "not yet"
    lister = Engine(Town(town), readonly=True)  # another process (plugin list): the last checks come from the town's cache
    try:
        listed = lister.gate_decisions(lister.plugins().plugins, lister.summary(), [], {}, time.time())
    finally:
        lister.close()
    assert listed == decided


def test_a_failing_subscriber_costs_nothing_and_is_reported_by_the_next_patrol(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "cool", 'type = "cooldown"\nduration = "1h"', "echo cool\n")
    engine = Engine(Town.locate(town))
    start_kennel(town)

    def broken(event: Event) -> None:
        raise ValueError(f"cannot handle {type(event).__name__}")

    engine.bus.subscribe(broken, GateChanged)
    try:
        first = engine.patrol_once(wait=True)
        assert [item.run.result for item in first.plugins if item.run] == ["success"], "the run went on"
        second = engine.patrol_once(wait=True)
        said = [problem.reason for problem in second.problems]
        assert any("broken" in reason and "ValueError: cannot handle GateChanged" in reason for reason in said), said
    finally:
        engine.close()


def twelve_queued(tmp_path: Path, prefix: str) -> tuple[Path, Engine, list[Bead], Any]:
    """A town of two dogs with twelve manual plugins, a run of each queued; its engine and its ledger."""
    town = make_town(tmp_path / "town")  # two dogs
    names = [f"{prefix}-{n}" for n in range(12)]
    for name in names:
        add_plugin(town, name, 'type = "manual"')
    engine = Engine(Town.locate(town))
    return town, engine, [engine.run_plugin(name) for name in names], ledger(town)


def test_takes_refused_by_another_kennel_free_their_dogs_at_once_not_after_an_idle_wait(tmp_path: Path) -> None:
    """Twelve queued runs every one of which another kennel takes first: two dogs of this kennel go through all twelve
    refusals in one go, never waiting the loop's idle second between them."""
    town, engine, queued, book = twelve_queued(tmp_path, "moved")
    looked: list[int] = []

    class Racing(Kennel):
        def jobs(self, idle: int) -> list:
            found = super().jobs(idle)
            for job in found:  # another kennel takes each one between this kennel's read and its take
                book.take_run(job.run.id, {"owner": {"host": "elsewhere", "pid": 1}})
            looked.append(len(found))
            return found

    house = Racing(Engine(Town.locate(town)))
    house.open()
    started = time.monotonic()
    house.start()
    try:
        wait_for(lambda: sum(looked) >= 12, 10, "the kennel to try every run")
        elapsed = time.monotonic() - started
    finally:
        house.close()
        engine.close()
    assert sum(looked) == 12 and all(book.get(run.id).data["owner"]["host"] == "elsewhere" for run in queued)
    assert elapsed < 2.0, f"six turns of refusals took {elapsed:.1f}s: each waited the loop's idle second"


def test_the_dogs_take_a_page_of_the_queue_from_one_read_and_skip_a_run_of_it_stopped_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twelve queued runs, two dogs: one read of the queue serves every take (a thousand runs queued at once must not
    cost a read per turn of the dogs' loop); a run of that page stopped while it waited is refused, and the rest run."""
    import gtcore.dogs.kennel

    monkeypatch.setattr(gtcore.dogs.kennel, "RESCAN_SECONDS", 120.0)  # a page never ages out here, however slow the machine
    town, engine, queued, book = twelve_queued(tmp_path, "paged")

    class Stopping(Kennel):
        def jobs(self, idle: int) -> list:
            found = super().jobs(idle)
            if found and found[0].run.id == queued[0].id:  # the page is read: its last run is stopped before its take
                book.request_stop(queued[-1].id, "changed my mind")
            return found

    house = Stopping(Engine(Town.locate(town)))
    reads: list[int] = []  # the reads that found runs queued (an idle kennel still looks four times a second)
    read = house.engine.ledger.queued_runs

    def counted(limit: int | None = None) -> list:
        found = read(limit)
        reads.extend([1] if found else [])
        return found

    house.engine.ledger.queued_runs = counted  # type: ignore[method-assign]
    house.open()
    house.start()
    try:
        ended = engine.wait_runs([run.id for run in queued], timeout=30)
    finally:
        house.close()
        engine.close()
    assert [ended[run.id].result for run in queued] == ["success"] * 11 + ["abandoned"]
    assert len(reads) <= 2, f"{len(reads)} reads of a queue holding runs, for 12 runs (one for the page, one once it runs short)"


def test_a_long_lived_reader_sees_the_checks_patrols_keep_later(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", 'kennel = "external"\n')
    add_plugin(town, "cond", 'type = "condition"\ncheck = "echo not yet; exit 1"')
    writer = Engine(Town(town))
    watcher = Engine(Town(town), readonly=True, keep_caches=True)  # a read-only control room: one engine for its life
    try:
        plugins = watcher.plugins().plugins
        before = watcher.gate_decisions(plugins, watcher.summary(), [], {}, time.time())["cond"]
        writer.patrol_once()
        after = watcher.gate_decisions(plugins, watcher.summary(), [], {}, time.time())["cond"]
    finally:
        writer.close()
        watcher.close()
    assert before.reason.startswith("no check known yet") and after.reason == "not yet"
