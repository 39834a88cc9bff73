"""The single-flight and exactly-once guards, one behaviour each: every test here fails when its guard is taken out.

A plugin runs once per open gate (``GateMoved``), never twice at a time (the one-running-run rule, in the
ledger, in ``plugin run``, in the gates and in the dogs' queue); a patrol closes as abandoned exactly the
runs whose owner is gone (never one still in flight here, never one of another host); a run is closed
once and only its own processes report on it; an escalation is counted, not duplicated, and each of its
deliveries is sent by one process; a stale one moves up one step however many patrols race; a day is
digested once.  Runs are real ``run.sh`` processes; a "second process" is a real ``gtui`` command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from enginekit import (
    add_plugin,
    claim_running,
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
from kennelkit import kennel_pids, served
from servers import WebhookServer, free_port

from gtcore.core.errors import GateMoved, GtError, RunInFlight
from gtcore.core.events import Event, GateChanged
from gtcore.digest import day_bounds, make_digest, utc_day
from gtcore.dogs import processes
from gtcore.engine import Engine
from gtcore.escalation.escalations import LEASE_SECONDS, Escalations
from gtcore.model import Report
from gtcore.patrol.cycle import reconcile
from gtcore.town.layout import Town

MANUAL = 'type = "manual"'
ON_GO = 'type = "event"\non = "go"'
HELD = "echo $$ > run.pid\nwhile [ ! -e release ]; do sleep 0.02; done\n"  # runs until the test touches release
T0 = 1_800_000_000.0
HOUR = 3600.0
HUMAN_SMS = "+15550100"

pytestmark = pytest.mark.usefixtures("storage")  # every test here runs against each storage backend


def engine_for(town: Path) -> Engine:
    return Engine(Town.locate(town))


def engine_runner(town: Path) -> Any:
    """The runner of the kennel serving ``town`` in this process (the one open_engine started)."""
    from gtcore.dogs.runner import _LIVE

    (runner,) = [runner for runner in _LIVE if runner.town.root == Town.locate(town).root]
    return runner


@contextmanager
def open_engine(town: Path) -> Iterator[Engine]:
    """An engine, and a kennel in this process that runs what it queues (and stops what is left at the end)."""
    with served(town, engine_for(town)) as engine:
        yield engine


@contextmanager
def running_elsewhere(town: Path, name: str) -> Iterator[Any]:
    """``gtui plugin run NAME`` in another process, its (HELD) run in flight until the block ends; yields the wisp."""
    directory = town / "plugins" / name
    other = gtui_start(town, "plugin", "run", name, "--json")
    script = None
    try:
        in_flight = wait_for(lambda: taken(town, name), 15, f"the other process's kennel to take {name}")
        script = read_pid(directory / "run.pid")
        yield in_flight
        (directory / "release").touch()
        out, err = other.communicate(timeout=15)
        assert other.returncode == 0, err
        assert json.loads(out)["result"] == "success"
    finally:
        (directory / "release").touch()
        if other.poll() is None:
            other.kill()
            other.wait()
        if script is not None:
            kill_group(script)


def escalation_settings(town: Path, settings: dict[str, Any]) -> None:
    (town / "settings" / "escalation.json").write_text(json.dumps(settings), encoding="utf-8")


def escalations(town: Path, delivery_timeout: float = 2.0) -> Escalations:
    """The escalation service as another process opens it: its own ledger connection."""
    return Escalations(Town.locate(town), ledger(town), delivery_timeout=delivery_timeout)


# -- GateMoved: a dispatch decided on a gate that moved since is refused (ledger.claiming) --------------------------


def test_a_dispatch_whose_gate_another_process_ran_meanwhile_is_refused_and_a_fresh_one_runs(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "racer", ON_GO, "echo ran\n")
    raced: list[Any] = []

    def another_process_runs_it(event: Event) -> None:
        # The patrol has decided the gate (open) and not dispatched yet: another gtui runs the plugin right now.
        if isinstance(event, GateChanged) and event.plugin == "racer" and event.open and not raced:
            raced.append(gtui(town, "plugin", "run", "racer", "--json"))

    with open_engine(town) as engine:
        engine.emit_event("go")
        engine.bus.subscribe(another_process_runs_it, GateChanged)
        report = engine.patrol_once(wait=True)
        assert len(raced) == 1 and raced[0].code == 0, raced
        other = raced[0].json()
        (item,) = report.plugins
        assert item.decision.open  # it was open when decided...
        # ...but the run it was decided on is no longer the last one
        assert item.dispatched is False and item.run is None, f"dispatched on a gate that moved: {item.run and item.run.ref}"
        assert "run meanwhile" in (item.note or ""), item.note
        assert [run.ref for run in runs(town, "racer")] == [other["id"]], "a second wisp for one open gate"

        engine.emit_event("go")  # a new reason to run: the fresh decision is based on the other process's run
        fresh = engine.patrol_once(wait=True)
        (item,) = fresh.plugins
        assert item.dispatched and item.run is not None and item.run.result == "success"
    assert [run.ref for run in runs(town, "racer")] == [item.run.ref, other["id"]]


def test_a_claim_based_on_a_stale_last_run_raises_gate_moved(tmp_path: Path) -> None:
    book = ledger(make_town(tmp_path / "town"))
    first = book.claim_run("nightly", "town")
    book.close_run(first.id, "success")
    with pytest.raises(GateMoved, match=first.ref):
        book.claim_run("nightly", "town", expect_last_run=None)  # decided as if it had never run
    assert [run.id for run in book.runs("nightly")] == [first.id]  # a refused claim records nothing
    second = book.claim_run("nightly", "town", expect_last_run=first.id)
    book.close_run(second.id, "success")
    with pytest.raises(GateMoved, match=second.ref):
        book.claim_run("nightly", "town", expect_last_run=first.id)
    assert book.plugin_summary()["nightly"].run_count == 2


# -- one running run per plugin --------------------------------------------------------------------------------------


def test_a_second_claim_while_a_run_is_in_flight_in_another_process_is_refused(tmp_path: Path) -> None:
    """The ledger's partial unique index ``one_running_run`` (ledger.claiming raises RunInFlight)."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "busy", MANUAL, HELD)
    book = ledger(town)
    with running_elsewhere(town, "busy") as in_flight:
        with pytest.raises(RunInFlight, match="busy"):
            book.claim_run("busy", "town")
        with pytest.raises(RunInFlight, match="busy"):
            book.claim_run("busy", "alpha", expect_last_run=in_flight.id)  # another rig, an up-to-date gate: still one at a time
        assert [run.id for run in book.runs_in_flight()] == [in_flight.id]
    assert book.runs_in_flight() == []
    after = book.claim_run("busy", "town")  # once it ended, the next run is taken
    assert after.status == "queued" and book.plugin_summary()["busy"].run_count == 2


def test_plugin_run_refuses_a_plugin_in_flight_in_another_process(tmp_path: Path) -> None:
    """Engine.run_plugin checks the ledger first, so the refusal is a RunInFlight naming the run, not a dispatch."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "busy", MANUAL, HELD)
    with running_elsewhere(town, "busy") as in_flight, open_engine(town) as engine:
        with pytest.raises(RunInFlight, match=in_flight.ref):
            engine.run_plugin("busy", force=True)
        assert len(runs(town, "busy")) == 1


def test_a_patrol_keeps_the_gate_of_a_plugin_running_elsewhere_closed(tmp_path: Path) -> None:
    """gates.evaluate: a run in flight closes the gate, whatever else would open it."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "busy", ON_GO, HELD)
    with running_elsewhere(town, "busy") as in_flight, open_engine(town) as engine:
        engine.emit_event("go")  # would open the event gate: it came after the run started
        report = engine.patrol_once(wait=True)
        (item,) = report.plugins
        assert not item.decision.open, f"the gate opened while {in_flight.ref} runs: {item.decision.reason}"
        assert item.decision.reason == f"running ({in_flight.ref})"
        assert item.dispatched is False
        assert len(runs(town, "busy")) == 1


def test_a_plugin_is_queued_at_most_once_and_never_queued_while_it_runs(tmp_path: Path) -> None:
    """The one-run-in-flight index: a plugin already queued (not yet taken) or running is not queued again."""
    town = make_town(tmp_path / "town", "dogs = 2\n")
    directory = add_plugin(town, "busy", MANUAL, HELD)
    engine = engine_for(town)
    first = engine.run_plugin("busy")  # no kennel yet: it waits in the queue
    assert first.status == "queued"
    with pytest.raises(RunInFlight, match=f"{first.ref}, queued for a kennel"):
        engine.run_plugin("busy")
    with served(town, engine):
        wait_for(lambda: (run := running(town, "busy")) is not None and run.status == "running", 10, "the kennel to take it")
        with pytest.raises(RunInFlight, match=f"{first.ref}, on dog"):
            engine.run_plugin("busy")  # nor while it runs
        (directory / "release").touch()
        assert engine.wait_runs([first.id], timeout=10)[first.id].result == "success"
    assert len(runs(town, "busy")) == 1


def test_one_event_opens_its_gate_for_one_run(tmp_path: Path) -> None:
    """gates.event: an event emitted before the last run started does not open the gate again."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "on-go", ON_GO, "echo ran\n")
    with open_engine(town) as engine:
        engine.emit_event("go")
        assert [item.dispatched for item in engine.patrol_once(wait=True).plugins] == [True]
        (again,) = engine.patrol_once(wait=True).plugins
        assert not again.decision.open and again.dispatched is False, again.decision.reason
        engine.emit_event("go")
        assert [item.dispatched for item in engine.patrol_once(wait=True).plugins] == [True]
    assert [run.result for run in runs(town, "on-go")] == ["success", "success"]


# -- reconcile: who owns a run in flight ------------------------------------------------------------------------------


def test_a_run_in_flight_in_this_process_is_left_running_by_its_own_patrol(tmp_path: Path) -> None:
    """patrol.reconcile skips the runs ``owns`` says this process executes (even though their owner pid is ours)."""
    town = make_town(tmp_path / "town")
    directory = add_plugin(town, "slow", MANUAL, HELD)
    with open_engine(town) as engine:
        queued = engine.run_plugin("slow")
        in_flight = wait_for(lambda: taken(town, "slow"), 10, "the run to be taken")
        assert in_flight.data["owner"]["pid"] == processes.owner_identity()["pid"]
        report = engine.patrol_once()
        assert report.abandoned == []
        still = running(town, "slow")
        assert still is not None and still.id == in_flight.id
        script = read_pid(directory / "run.pid")
        assert not gone(script), "the patrol killed its own run's processes"
        (directory / "release").touch()
        ended = engine.wait_runs([queued.id], timeout=10)[queued.id]
    assert (ended.id, ended.result) == (in_flight.id, "success")


def test_a_run_whose_owner_was_killed_is_closed_abandoned_by_the_next_patrol(tmp_path: Path) -> None:
    """processes.owner_dead: the recorded owner pid no longer exists on this host."""
    town = make_town(tmp_path / "town")
    directory = add_plugin(town, "orphan", MANUAL, "echo $$ > run.pid\nsleep 30\n")
    gtui(town, "plugin", "run", "orphan", "--detach")
    victim = None
    script = None
    try:
        in_flight = wait_for(lambda: taken(town, "orphan"), 15, "the kennel to take the run")
        script = read_pid(directory / "run.pid")
        victim = kennel_pids(town)[0]
        os.kill(victim, signal.SIGKILL)  # the kennel, with nothing to say goodbye
        wait_for(lambda: gone(victim), 5, "the kennel to die")
        with open_engine(town) as engine:
            report = engine.patrol_once()
        assert [run.ref for run in report.abandoned] == [in_flight.ref]
        closed = ledger(town).get(in_flight.id)
        assert (closed.status, closed.result) == ("closed", "abandoned")
        assert f"owner process {victim}" in closed.data["reason"]
        wait_for(lambda: gone(script), 5, "the abandoned run's run.sh to be killed")
    finally:
        if script is not None:
            kill_group(script)


def test_a_run_whose_owner_pid_was_recycled_is_abandoned_but_a_live_owner_keeps_its_run(tmp_path: Path) -> None:
    """processes.owner_dead compares the owner's start time: the same pid started again is not the owner."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "idle", MANUAL)
    owner = subprocess.Popen(["sleep", "30"])
    try:
        start = processes.process_start(owner.pid)
        assert start is not None
        book = ledger(town)
        alive = claim_running(book, "alive", "town", data={"owner": {"host": processes.hostname(), "pid": owner.pid, "start": start}})
        recycled = claim_running(book, "recycled", "town",
                                  data={"owner": {"host": processes.hostname(), "pid": owner.pid, "start": start - 1}})
        with open_engine(town) as engine:
            report = engine.patrol_once()
        assert [run.ref for run in report.abandoned] == [recycled.ref]
        assert book.get(recycled.id).result == "abandoned"
        assert book.get(alive.id).status == "running"  # its owner is alive, in another process: not ours to close
        assert owner.poll() is None, "the live owner was killed"
    finally:
        owner.kill()
        owner.wait()


def test_a_run_recorded_by_this_process_that_no_dog_here_executes_is_abandoned(tmp_path: Path) -> None:
    """patrol.reconcile's "ours" branch: our own host and pid, yet not in flight here (left by an engine that went away)."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "idle", MANUAL)
    book = ledger(town)
    left = claim_running(book, "left-behind", "town", data={"owner": processes.owner_identity()})
    with open_engine(town) as engine:
        report = engine.patrol_once()
    assert [run.ref for run in report.abandoned] == [left.ref]
    assert book.get(left.id).result == "abandoned"


def test_a_run_that_ended_by_itself_after_the_patrol_read_it_is_not_reported_abandoned(tmp_path: Path) -> None:
    """patrol.reconcile reports only what it closed: a run its dog recorded meanwhile keeps its result and is not listed."""
    town = make_town(tmp_path / "town")
    book = ledger(town)
    claimed = claim_running(book, "quick", "town", data={"owner": processes.owner_identity()})
    as_read = book.gate_facts().running  # the patrol's read, just before the dog records the end
    book.close_run(claimed.id, "success")
    assert reconcile(book, as_read, lambda run_id: False, time.time(), 120.0, lambda name: False) == []
    assert book.get(claimed.id).result == "success"


def test_a_run_owned_on_another_host_is_never_abandoned(tmp_path: Path) -> None:
    """processes.owner_dead: a pid is only looked up on the host that recorded it."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "idle", MANUAL)
    finished = subprocess.Popen(["true"])
    finished.wait()  # a pid nothing runs under here any more
    book = ledger(town)
    here = claim_running(book, "here", "town", data={"owner": {"host": processes.hostname(), "pid": finished.pid, "start": 1}})
    there = claim_running(book, "there", "town", data={"owner": {"host": "another-host.invalid", "pid": finished.pid, "start": 1}})
    with open_engine(town) as engine:
        report = engine.patrol_once()
    assert [run.ref for run in report.abandoned] == [here.ref]
    assert book.get(there.id).status == "running"


def test_a_take_is_never_visible_on_the_ledger_before_this_process_owns_it(tmp_path: Path) -> None:
    """Runner.record commits takes under the lock ``owns`` takes: a patrol can never see a running wisp of this
    process that ``owns`` does not know yet (it would close a live run of its own as abandoned)."""
    town = make_town(tmp_path / "town")
    directory = add_plugin(town, "slow", MANUAL, HELD)
    with open_engine(town) as engine:
        runner = engine_runner(town)
        with runner.lock:  # what a reconciling patrol's owns() waits for: meanwhile, this process's ownership stands still
            queued = engine.run_plugin("slow")
            time.sleep(0.3)  # the dogs try to take it meanwhile
            seen = running(town, "slow")
            assert seen is not None and (seen.status == "queued" or seen.id in runner.active), \
                f"{seen.ref} is running on the ledger, but not owned here"
        in_flight = wait_for(lambda: taken(town, "slow"), 10, "the run to be taken")
        assert engine.owns_run(in_flight.id)
        assert engine.patrol_once().abandoned == []
        (directory / "release").touch()
        ended = engine.wait_runs([queued.id], timeout=10)[queued.id]
    assert ended.result == "success"


# -- a run is closed once, and only its own processes report on it ---------------------------------------------------


def test_closing_a_run_again_keeps_its_first_result_and_counts_it_once(tmp_path: Path) -> None:
    """ledger.closing: a wisp that is no longer running is returned as it is."""
    town = make_town(tmp_path / "town")
    add_plugin(town, "quick", MANUAL, "echo done\n")
    with open_engine(town) as engine:
        queued = engine.run_plugin("quick")
        ended = engine.wait_runs([queued.id], timeout=10)[queued.id]
    assert ended.result == "success"
    book = ledger(town)
    late = book.close_run(ended.id, "failure", data={"reason": "a late patrol thought it abandoned"})
    assert (late.result, late.closed_at) == ("success", ended.closed_at)
    assert "reason" not in book.get(ended.id).data
    stats = book.plugin_summary()["quick"]
    assert (stats.run_count, stats.failure_count, stats.last_result) == (1, 0, "success")


def test_a_report_with_another_token_or_after_the_end_is_refused(tmp_path: Path) -> None:
    """ledger.report_run: the run's token proves the report comes from the run; an ended run takes no report."""
    town = make_town(tmp_path / "town")
    directory = add_plugin(town, "honest", MANUAL, HELD)
    with open_engine(town) as engine:
        queued = engine.run_plugin("honest")
        in_flight = wait_for(lambda: taken(town, "honest"), 10, "the run to be taken")
        with pytest.raises(GtError, match="does not match"):
            engine.report(in_flight.ref, "forged-token", Report("failure", "forged"))
        with pytest.raises(GtError, match="does not match"):
            engine.report(in_flight.ref, "", Report("failure", "no token at all"))
        engine.report(in_flight.ref, in_flight.data["token"], Report("skipped", "nothing to do today"))
        (directory / "release").touch()
        ended = engine.wait_runs([queued.id], timeout=10)[queued.id]
        assert (ended.result, ended.body) == ("skipped", "nothing to do today")
        with pytest.raises(GtError, match="has ended"):
            engine.report(in_flight.ref, in_flight.data["token"], Report("failure", "too late"))
    assert ledger(town).get(in_flight.id).result == "skipped"


def test_threads_of_one_process_take_turns_on_the_writers_connection(tmp_path: Path) -> None:
    """Ledger._retry's writer lock: one shared connection, never two transactions on it at once."""
    book = ledger(make_town(tmp_path / "town"))
    threads_count, rounds = 8, 25
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []
    won: list[int] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for _ in range(rounds):
                run = book.claim_run(f"thread-{n}", "town")
                book.close_run(run.id, "success")
                try:
                    contested = book.claim_run("contested", "town")
                except RunInFlight:
                    continue
                won.append(n)
                book.close_run(contested.id, "success")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    summary = book.plugin_summary()
    assert all(summary[f"thread-{n}"].run_count == rounds for n in range(threads_count))
    assert summary["contested"].run_count == len(won) >= 1
    assert book.runs_in_flight() == []


# -- escalations: counted not duplicated, each delivery sent by one process, one step up per threshold ----------------


def test_the_same_subject_and_source_raised_again_counts_up_instead_of_a_second_escalation(tmp_path: Path) -> None:
    """Escalations.raise_ finds the open duplicate (same subject, same source) and counts it."""
    town = make_town(tmp_path / "town")
    escalation_settings(town, {"routes": {"low": ["bead"]}})
    first = gtui(town, "escalate", "Disk almost full", "-s", "low", "--json")  # another process raises it
    assert first.code == 0, first.err
    (bead,) = ledger(town).beads("escalation")
    service = escalations(town)
    again, created = service.raise_("Disk  almost\nfull", "low", source=bead.data["source"], now=time.time())
    assert not created, f"a second escalation {again.ref} beside {bead.ref}"
    assert again.ref == bead.ref and again.occurrences == 2
    assert gtui(town, "escalate", "Disk almost full", "-s", "low").code == 0
    assert [(item.ref, item.occurrences) for item in service.list(now=time.time())] == [(bead.ref, 3)]
    other, created = service.raise_("Disk almost full", "low", source="dog:bravo", now=time.time())
    assert created and other.ref != bead.ref  # another source is another escalation


class HeldWebhook:
    """A real HTTP server on 127.0.0.1 that keeps each POST and answers it only once ``release`` is set."""

    def __init__(self) -> None:
        self.posts: list[Any] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.posts.append(json.loads(self.rfile.read(length) or b"null"))
                outer.release.wait(10)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> HeldWebhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_delivery_leased_by_one_process_is_not_sent_again_by_another(tmp_path: Path) -> None:
    """Escalations deliver_due leases each due delivery (its next attempt moved past LEASE_SECONDS) before sending it."""
    town = make_town(tmp_path / "town", 'delivery_timeout = "5s"\n')
    with HeldWebhook() as hook:
        escalation_settings(town, {"routes": {"high": ["bead", "sms:human"]},
                                   "contacts": {"human_sms": HUMAN_SMS, "sms_webhook": hook.url("/sms")}})
        sender = gtui_start(town, "escalate", "Pager down", "-s", "high", "--json")  # raises it and sends the SMS
        try:
            wait_for(lambda: hook.posts, 15, "the first process's SMS to reach the webhook")
            (bead,) = ledger(town).beads("escalation")
            other = escalations(town)
            leased = other.deliver_due(time.time())
            assert leased == 0, "a delivery in flight in the first process was leased again by the second"
            assert other.deliver_due(time.time() + LEASE_SECONDS - 10) == 0
            hook.release.set()
            _, err = sender.communicate(timeout=15)
            assert sender.returncode == 0, err
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
        assert len(hook.posts) == 1
        after = other.get(bead.ref)
        assert [(item["channel"], item["ok"]) for item in after.deliveries] == [("bead", True), ("sms:human", True)]
        assert after.bead.data["pending"] == []
        assert other.deliver_due(time.time() + 10 * HOUR) == 0 and len(hook.posts) == 1


def test_a_new_streak_while_its_delivery_still_waits_sends_one_message(tmp_path: Path) -> None:
    """escalation._add_pending: the channel already waiting carries the new streak; no second pending entry."""
    town = make_town(tmp_path / "town")
    port = free_port()  # the webhook is down at first
    escalation_settings(town, {"routes": {"high": ["bead", "sms:human"]},
                               "contacts": {"human_sms": HUMAN_SMS, "sms_webhook": f"http://127.0.0.1:{port}/sms"}})
    service = escalations(town)
    first, _ = service.raise_("plugin x is failing", "high", source="plugin:x", now=T0)
    assert first.failing_channels == ["sms:human"]
    service.note(first.ref, event="recovered", detail="run-2 succeeded", now=T0 + 10, recovered=True)
    hook = WebhookServer(port=port).start()
    try:
        again, created = service.raise_("plugin x is failing", "high", source="plugin:x", now=T0 + 60)  # the old retry is due too
        assert not created and again.ref == first.ref
        assert len(hook.posts_to("/sms")) == 1, f"the new streak was sent {len(hook.posts_to('/sms'))} times"
        assert service.deliver_due(T0 + HOUR) == 0 and len(hook.posts) == 1
        assert again.bead.data["pending"] == []
    finally:
        hook.stop()


class Interleaved:
    """This process's real ledger, with another process's step run just before its first change of an escalation.

    Nothing is faked: every call goes to the real ledger; it only fixes the moment another process acts (after this
    one read the escalation, before it writes), the moment a race between two patrols would otherwise leave to chance.
    """

    def __init__(self, real: Any, before_change: Any) -> None:
        self.real, self.before_change = real, [before_change]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def change_escalation(self, *args: Any, **kwargs: Any) -> Any:
        if self.before_change:
            self.before_change.pop()()
        return self.real.change_escalation(*args, **kwargs)


def test_two_processes_reescalating_at_once_move_it_up_one_step(tmp_path: Path) -> None:
    """Escalations._bump decides in the write, on the escalation as it is then: one moved meanwhile is left alone."""
    town = make_town(tmp_path / "town")
    escalation_settings(town, {"stale_threshold": "1h", "max_reescalations": 3,
                               "routes": {name: ["bead"] for name in ("low", "medium", "high", "critical")}})
    now = time.time()
    escalation, _ = escalations(town).raise_("Witness quiet", "low", now=now - 2 * HOUR)  # stale for an hour already
    other: list[Any] = []

    def another_patrol_moves_it() -> None:
        other.append(gtui(town, "escalate", "stale", "--json"))

    service = Escalations(Town.locate(town), Interleaved(ledger(town), another_patrol_moves_it))
    moves = service.reescalate_stale(now)  # read it stale (low); the other process moves it before this one writes
    assert len(other) == 1 and other[0].code == 0, other
    assert [(move["from"], move["to"]) for move in other[0].json()["reescalated"]] == [("low", "medium")]
    assert [(old, new) for _, old, new in moves] == [("low", "medium")]  # this patrol saw it stale too: the race was run
    after = service.get(escalation.ref)
    assert (after.severity, after.reescalations) == ("medium", 1), "re-escalated twice for one threshold"
    assert [item["event"] for item in after.bead.data["history"]].count("re-escalated") == 1


# -- digests: a day is squashed once ----------------------------------------------------------------------------------


def past_day_runs(book: Any, plugin: str, results: list[str], day_offset: int = 2) -> tuple[Any, list[Any]]:
    """Finished runs of ``plugin`` on a past UTC day, an hour apart; returns (day, runs)."""
    day = utc_day(time.time()) - timedelta(days=day_offset)
    start = day_bounds(day)[0]
    done = []
    for hour, result in enumerate(results, start=1):
        run = book.claim_run(plugin, "town", now=start + hour * HOUR)
        done.append(book.close_run(run.id, result, data={"duration_s": 2.0}, now=start + hour * HOUR + 2))
    return day, done


def test_digesting_the_same_day_twice_counts_each_run_once(tmp_path: Path) -> None:
    """digest.make_digest deletes what it squashed, in the same transaction."""
    book = ledger(make_town(tmp_path / "town"))
    day, _ = past_day_runs(book, "alpha", ["success", "failure", "success"])
    first = make_digest(book, day, ["alpha"], now=time.time())
    assert first.squashed == 3 and first.digest is not None
    again = make_digest(book, day, ["alpha"], now=time.time())
    assert again.squashed == 0, f"{again.squashed} runs squashed a second time"
    assert again.digest is not None and again.digest.id == first.digest.id
    (digest,) = book.beads("digest")
    assert digest.data["runs"] == 3
    assert digest.data["plugins"]["alpha"]["by_result"] == {"failure": 1, "success": 2}
    assert book.runs("alpha") == []
    assert book.plugin_summary()["alpha"].run_count == 3  # the summary is not changed by squashing


def test_a_late_run_is_merged_into_its_days_digest(tmp_path: Path) -> None:
    """digest.make_digest finds the day's digest bead and merges into it: one digest bead per day."""
    book = ledger(make_town(tmp_path / "town"))
    day, _ = past_day_runs(book, "alpha", ["success", "success"])
    first = make_digest(book, day, ["alpha"], now=time.time())
    past_day_runs(book, "alpha", ["timeout"])  # a wisp of that day recorded after its digest
    merged = make_digest(book, day, ["alpha"], now=time.time())
    assert merged.merged, "the late run did not go into the day's digest"
    assert merged.squashed == 1
    assert merged.digest is not None and first.digest is not None and merged.digest.id == first.digest.id
    (digest,) = book.beads("digest")
    assert digest.data["runs"] == 3
    assert digest.data["plugins"]["alpha"]["by_result"] == {"success": 2, "timeout": 1}


def test_a_run_in_flight_survives_its_days_digest_and_joins_it_once_closed(tmp_path: Path) -> None:
    """digest squashes finished wisps only: a running one is left for its dog to close."""
    book = ledger(make_town(tmp_path / "town"))
    day, _ = past_day_runs(book, "alpha", ["success"])
    in_flight = book.claim_run("alpha", "town", now=day_bounds(day)[0] + 5 * HOUR)
    first = make_digest(book, day, ["alpha"], now=time.time())
    assert first.squashed == 1, f"{first.squashed} runs squashed, the one in flight among them"
    assert [run.id for run in book.runs("alpha", status="queued")] == [in_flight.id]
    book.close_run(in_flight.id, "success", data={"duration_s": 1.0})
    merged = make_digest(book, day, ["alpha"], now=time.time())
    assert merged.squashed == 1 and merged.merged
    (digest,) = book.beads("digest")
    assert digest.data["runs"] == 2
