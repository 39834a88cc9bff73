"""The ledger on every backend: concurrency, the materialised plugin summary, runs, errors, schema and its upgrades.

Every test runs once per backend (the ``storage`` fixture: a SQLite file under ``tmp_path``, or a database of the
PostgreSQL server the suite starts); those marked ``sqlite_only`` test the file itself.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from enginekit import claim_running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtcore.core.errors import GtError, LedgerError, NotFound, Refused, RunInFlight, RunTaken
from gtcore.model import Bead, Drift, DriftOutcome, PluginStats, Report, run_problems
from gtcore.storage import ledger_at, open_ledger
from gtcore.storage.contract import Ledger, Receipt, Take
from gtcore.storage.postgresql_schema import SCHEMA_VERSION as PG_SCHEMA_VERSION
from gtcore.storage.shared import LABEL_CAP, MAX_DRIFTS
from gtcore.storage.sqlite import SCHEMA_VERSION
from gtcore.storage.testing import (
    bead_rows,
    file_facts,
    insert_old_run,
    insert_raw_bead,
    ledger_at_version,
    lock_held_by_child,
    lock_held_here,
    postgres_at_version,
    postgres_catalogue,
    postgres_schema,
    refused_statement,
    set_schema_version,
    streak,
    summary_from_labels,
    write_in_flight,
)

pytestmark = pytest.mark.usefixtures("storage")  # every test here runs against each storage backend

FAILED = ("failure", "timeout")
FINAL = ("success", "failure", "timeout", "skipped", "abandoned", "warning", "check-only")
BASE = 1_700_000_000.0


# -- many processes on one fresh file ---------------------------------------------------------

CHILD = r"""
import json, sys, time
from pathlib import Path

proc, db, ready, go = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
from gtcore.storage import open_ledger
from gtcore.core.errors import RunInFlight

ready.touch()
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.0005)

ledger = open_ledger(db)
won = 0
for i in range(200):
    tags = [f"proc:{proc}", f"seq:{i}"]
    if i % 2 == 0:
        ledger.create("event", title=f"p{proc} e{i}", labels=tags, data={"proc": proc, "seq": i})
    else:
        run = ledger.claim_run(f"proc{proc}", f"rig{proc % 3}", labels=tags, data={"seq": i})
        ledger.close_run(run.id, "failure" if i % 3 == 0 else "success", data={"done": True})
    if i % 10 == 0:
        try:
            contested = ledger.claim_run("contested", "town")
        except RunInFlight:
            pass
        else:
            won += 1
            ledger.close_run(contested.id, "success")
ledger.close()
print(json.dumps({"proc": proc, "won": won}))
"""

PROCS, WRITES = 8, 200


@pytest.mark.sqlite_only
def test_the_sqlite_schema_version_is_its_number_of_migrations() -> None:
    from gtcore.storage.sqlite_schema import MIGRATIONS

    assert len(MIGRATIONS) == SCHEMA_VERSION  # a migration added must raise the version the ledger is checked against


@pytest.mark.sqlite_only
def test_eight_processes_share_one_fresh_file(tmp_path: Path) -> None:
    db = tmp_path / "town" / ".gtui" / "ledger.db"
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(PROCS)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(n), str(db), str(ready[n]), str(go)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCS)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(path.exists() for path in ready):
            assert time.monotonic() < deadline, "children never got ready"
            assert all(child.poll() is None for child in children), "a child died before the start"
            time.sleep(0.005)
        assert not db.exists() and not db.parent.exists(), "the ledger must be created by the racing children"
        go.touch()
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    for n, (child, (_, err)) in enumerate(zip(children, outputs, strict=True)):
        assert err == "", f"process {n} wrote to stderr:\n{err}"
        assert child.returncode == 0, f"process {n} exited {child.returncode}"
    won = sum(json.loads(out)["won"] for out, _ in outputs)

    ledger = open_ledger(db)
    events = ledger.beads("event")
    runs = [run for run in ledger.runs(limit=None) if run.plugin != "contested"]
    assert len(events) + len(runs) == PROCS * WRITES == 1600
    summary = ledger.plugin_summary()
    failures_per_proc = sum(1 for i in range(1, WRITES, 2) if i % 3 == 0)
    for n in range(PROCS):
        mine = [bead for bead in (*events, *runs) if f"proc:{n}" in bead.labels]
        assert sorted(int(bead.data["seq"]) for bead in mine) == list(range(WRITES))
        assert {bead.title for bead in events if f"proc:{n}" in bead.labels} == {f"p{n} e{i}" for i in range(0, WRITES, 2)}
        stats = summary[f"proc{n}"]
        assert (stats.run_count, stats.failure_count, stats.last_result) == (WRITES // 2, failures_per_proc, "success")
    assert all(run.status == "closed" and run.data["done"] for run in runs)
    contested = ledger.runs("contested", limit=None)
    assert won >= 1 and len(contested) == won == summary["contested"].run_count
    assert all(run.status == "closed" for run in contested)
    facts = file_facts(db)
    assert (facts["integrity"], facts["journal_mode"], facts["user_version"]) == ("ok", "wal", SCHEMA_VERSION)


KILLED_MID_WRITE = r"""
import os, signal, sys
from pathlib import Path
from gtcore.storage import open_ledger

ledger = open_ledger(Path(sys.argv[1]))
ledger.claim_run("orphan", "town")
escalation = ledger.create("escalation", title="untouched", data={"severity": "low"})

def die(bead):  # called inside the write transaction, the write lock held
    os.kill(os.getpid(), signal.SIGKILL)

ledger.change_escalation(escalation.id, die, now=0.0)
"""


@pytest.mark.sqlite_only
def test_process_killed_inside_a_write(tmp_path: Path) -> None:
    """A writer SIGKILLed with the write lock held and a transaction half done: nothing is stuck or half-written."""
    db = tmp_path / "ledger.db"
    child = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(db)], capture_output=True, text=True, timeout=60)
    assert child.returncode == -9, child.stderr
    ledger = open_ledger(db, wait=1.0)
    assert [bead.data for bead in ledger.beads("escalation")] == [{"severity": "low", "pending": []}]
    orphan = ledger.runs("orphan")
    assert [run.status for run in orphan] == ["queued"], "the claim committed before the crash stays (patrol abandons it)"
    ledger.close_run(orphan[0].id, "abandoned")
    assert ledger.claim_run("orphan", "town").status == "queued"
    assert ledger.plugin_summary()["orphan"].run_count == 2
    assert file_facts(db)["integrity"] == "ok"


# -- the one-query summary against a slow computation -----------------------------------------


def random_ledger(ledger: Ledger, rng: random.Random, plugins: int = 24, ops: int = 900) -> dict[str, int]:
    """Random claims and closes with out-of-order and tied timestamps; returns what it exercised."""
    names = [f"plug-{rng.randrange(10**6):06d}-{n}" for n in range(plugins)]
    running: dict[str, int] = {}
    latest: dict[str, float] = {}
    seen = {"ties": 0, "out_of_order": 0, "refused": 0}
    for _ in range(ops):
        plugin = rng.choice(names[: plugins - 3])  # the last three never run
        if plugin in running:
            if rng.random() < 0.85:
                ledger.close_run(running.pop(plugin), rng.choice(FINAL), now=BASE + rng.randrange(10_000))
            else:
                with pytest.raises(RunInFlight):
                    ledger.claim_run(plugin, "rig-x", now=BASE)
                seen["refused"] += 1
            continue
        stamp = BASE + rng.randrange(300) + rng.choice((0.0, 0.5))
        if plugin in latest and rng.random() < 0.1:
            stamp = rng.choice((latest[plugin], stamp - 300))  # a tie with the latest start, or a much older one
        if plugin in latest:
            seen["ties"] += stamp == latest[plugin]
            seen["out_of_order"] += stamp < latest[plugin]
        latest[plugin] = max(stamp, latest.get(plugin, stamp))
        run = ledger.claim_run(plugin, rng.choice(("town", "alpha", "beta")), labels=[f"team:{rng.choice('abc')}"], now=stamp)
        running[plugin] = run.id
    for plugin in list(running):  # leave about half of them running
        if rng.random() < 0.5:
            result = rng.choice(FINAL)
            stopped = result == "abandoned" and rng.random() < 0.5  # a person stopped it: the streak neither grows nor ends
            ledger.close_run(running.pop(plugin), result, data={"reason": "stopped: by hand"} if stopped else None)
    for plugin in rng.sample([name for name in latest if name not in running], 3):  # and some runs in flight are the latest
        running[plugin] = ledger.claim_run(plugin, "town", now=BASE + 400 + rng.random()).id
    return seen


def slow_summary_from_runs(ledger: Ledger) -> dict[str, PluginStats]:
    """Plain Python over every run of every plugin."""
    out = {}
    in_end_order, _ = ledger.take_finished("slow-summary", 10**6)  # a new reader is given every end, in the order they committed
    for plugin in {run.plugin for run in ledger.runs(limit=None)}:
        runs = ledger.runs(plugin, limit=None)
        last = max(runs, key=lambda run: (run.created_at, run.id))
        ended = [(run.result, run.data.get("reason") or "") for run in in_end_order if run.plugin == plugin]
        out[plugin] = PluginStats(plugin, len(runs), sum(run.result in FAILED for run in runs), last.id, last.created_at, last.result,
                                  failure_streak=streak(ended))
    return out


@pytest.mark.sqlite_only
@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_summary_matches_slow_computation_on_random_data(tmp_path: Path, seed: int) -> None:
    db = tmp_path / "ledger.db"
    ledger = open_ledger(db)
    seen = random_ledger(ledger, random.Random(seed))
    assert seen["ties"] and seen["out_of_order"] and seen["refused"], f"random data too tame: {seen}"

    summary = ledger.plugin_summary()
    assert summary == slow_summary_from_runs(ledger)
    assert summary == summary_from_labels(db)
    assert len(summary) == 21, "plugins that never ran have no row"
    assert any(stats.last_result == "queued" for stats in summary.values())
    assert any(stats.failure_count for stats in summary.values())
    for stats in summary.values():
        assert stats.failure_rate == pytest.approx(stats.failure_count / stats.run_count)
    # Another Ledger on the same file (another process, say) sees the same summary.
    assert open_ledger(db).plugin_summary() == summary


@pytest.mark.sqlite_only
def test_summary_is_one_query(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    for n in range(5):
        ledger.close_run(ledger.claim_run(f"p{n}", "town").id, "success")
    statements: list[str] = []
    ledger._connect().set_trace_callback(statements.append)
    assert len(ledger.plugin_summary()) == 5
    assert len(statements) == 1, statements


def test_summary_ordering_rules(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    first = ledger.claim_run("p", "town", now=BASE + 100)
    stats = ledger.plugin_summary()["p"]
    assert (stats.run_count, stats.last_run_id, stats.last_result, stats.last_started_at) == (1, first.id, "queued", BASE + 100)
    ledger.close_run(first.id, "timeout", now=BASE + 200)
    older = ledger.claim_run("p", "town", now=BASE + 50)  # recorded later, started earlier
    stats = ledger.plugin_summary()["p"]
    assert (stats.run_count, stats.failure_count, stats.last_run_id, stats.last_result) == (2, 1, first.id, "timeout")
    ledger.close_run(older.id, "failure")  # closing an older run counts it, but it is not the last run
    stats = ledger.plugin_summary()["p"]
    assert (stats.failure_count, stats.last_run_id, stats.last_result, stats.last_started_at) == (2, first.id, "timeout", BASE + 100)
    tie = ledger.claim_run("p", "town", now=BASE + 100)  # same start as `first`: the higher id wins
    stats = ledger.plugin_summary()["p"]
    assert (stats.run_count, stats.last_run_id, stats.last_result) == (3, tie.id, "queued")
    ledger.close_run(tie.id, "success")
    stats = ledger.plugin_summary()["p"]
    assert (stats.failure_count, stats.last_result, stats.failure_rate) == (2, "success", pytest.approx(2 / 3))


def test_a_failure_streak_counts_what_ended_badly_and_not_what_a_person_stopped(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")

    def end(result: str, reason: str = "") -> int:
        run = ledger.claim_run("p", "town")
        ledger.close_run(run.id, result, data={"reason": reason} if reason else None)
        return ledger.plugin_summary()["p"].failure_streak

    assert end("abandoned", "stopped: the kennel was stopped by SIGTERM") == 0
    assert [end("failure"), end("timeout"), end("skipped"), end("abandoned", "stopped: ctrl+k"), end("abandoned")] == [1, 2, 2, 2, 3]
    assert [end("warning"), end("failure"), end("check-only"), end("failure"), end("success")] == [0, 1, 0, 1, 0]
    ledger.close()


def test_bare_runs_are_the_runs_without_their_labels(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    ran = ledger.claim_run("p", "town", labels=("team:ops",), now=BASE)
    ledger.close_run(ran.id, "failure", data={"reason": "exited 3"}, summary="disk full", now=BASE + 5)
    waiting = ledger.claim_run("q", "rig", now=BASE + 6)
    note = ledger.create("note", title="not a run")
    ids = [ran.id, waiting.id, note.id, 10**9]
    bare = sorted(ledger.bare_runs(ids), key=lambda bead: bead.id)
    whole = sorted(ledger.fetch_runs(ids), key=lambda bead: bead.id)
    assert [bead._replace(labels=()) for bead in whole] == bare and [bead.labels for bead in bare] == [(), ()]
    assert (bare[0].result, bare[0].body, bare[0].data["reason"], bare[1].status) == ("failure", "disk full", "exited 3", "queued")
    assert "team:ops" in whole[0].labels and ledger.bare_runs([]) == []
    ledger.close()


# -- claiming and closing runs ----------------------------------------------------------------


def test_claim_refuses_second_run_across_instances(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    one, two = open_ledger(db), open_ledger(db)
    run = one.claim_run("nightly", "alpha")
    with pytest.raises(RunInFlight, match="nightly"):
        one.claim_run("nightly", "alpha")
    with pytest.raises(RunInFlight, match="nightly"):
        two.claim_run("nightly", "beta")
    other = two.claim_run("hourly", "alpha")  # another plugin is not affected
    assert two.close_run(run.id, "success").result == "success"  # any instance may close it
    again = two.claim_run("nightly", "alpha")
    assert again.id > other.id > run.id
    with pytest.raises(RunInFlight):
        one.claim_run("nightly", "alpha")
    assert [bead.id for bead in one.runs("nightly", status="queued")] == [again.id]
    assert one.plugin_summary()["nightly"].run_count == 2, "a refused claim records nothing"


def test_close_run_twice_keeps_first_result(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    run = ledger.claim_run("p", "town", data={"dog": "rex"}, now=BASE)
    closed = ledger.close_run(run.id, "success", data={"exit": 0}, now=BASE + 5)
    assert (closed.status, closed.result, closed.closed_at, closed.data) == (
        "closed", "success", BASE + 5, {"dog": "rex", "previous_result": None, "exit": 0, "queued_at": run.data["queued_at"]})
    again = ledger.close_run(run.id, "failure", data={"exit": 1}, now=BASE + 9)
    assert again == closed
    assert ledger.get(run.id, "wisp") == closed
    stats = ledger.plugin_summary()["p"]
    assert (stats.failure_count, stats.last_result) == (0, "success")
    with pytest.raises(ValueError):
        ledger.close_run(run.id, "running")
    with pytest.raises(ValueError):
        ledger.close_run(run.id, "exploded")
    with pytest.raises(NotFound):
        ledger.close_run(run.id + 1000, "success")
    event = ledger.create("event", title="startup")
    with pytest.raises(NotFound):
        ledger.close_run(event.id, "success")


def test_run_labels(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    run = ledger.claim_run("backup", "alpha", labels=["team:infra", "tier:1", "plugin:backup"])
    expected = {"type:plugin-run", "plugin:backup", "rig:alpha", "team:infra", "tier:1"}
    assert set(run.labels) == expected | {"result:queued"}
    assert set(ledger.get(run.id).labels) == expected | {"result:queued"}
    assert (run.kind, run.status, run.plugin, run.rig, run.result) == ("wisp", "queued", "backup", "alpha", "queued")
    running = ledger.take_run(run.id, {"dog": "rex"})
    assert set(running.labels) == set(ledger.get(run.id).labels) == expected | {"result:running"}
    assert (running.status, running.result, running.data["dog"]) == ("running", "running", "rex")
    assert run.ref == f"run-{run.id}"
    closed = ledger.close_run(run.id, "timeout")
    assert set(closed.labels) == expected | {"result:timeout"}
    assert ledger.close_run(run.id, "success").labels == closed.labels
    town = ledger.claim_run("sweep", "town")
    assert "rig:town" in town.labels


def test_a_receipt_is_a_run_closed_at_once_that_the_summary_counts(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    run = ledger.claim_run("quality", "town", now=BASE)
    ledger.close_run(run.id, "success", now=BASE + 1)
    report = Report("failure", "quality: 2 breaches", "Worker: nux", ("team:qa", "result:bogus", "rig:gastown"))
    receipt = ledger.record_receipt(Receipt("quality", "gastown", report, "deacon/dogs/rex", BASE + 60))
    assert (receipt.kind, receipt.status, receipt.result, receipt.body) == ("wisp", "closed", "failure", "quality: 2 breaches")
    assert (receipt.created_at, receipt.closed_at, receipt.rig) == (BASE + 60, BASE + 60, "gastown")
    assert set(receipt.labels) == {"type:plugin-run", "plugin:quality", "rig:gastown", "result:failure", "team:qa"}
    assert (receipt.data["receipt"], receipt.data["actor"], receipt.data["report"]["detail"]) == (True, "deacon/dogs/rex", "Worker: nux")
    assert ledger.plugin_summary()["quality"] == PluginStats("quality", 2, 1, receipt.id, BASE + 60, "failure", "quality: 2 breaches", 1)
    odd = ledger.record_receipt(Receipt("quality", "town", Report("partial", "half done"), now=BASE + 120))
    assert (odd.result, odd.data["reported_result"]) == ("success", "partial") and "partial" in odd.data["reason"]
    assert ledger.runs("quality", limit=None)[0].id == odd.id


DRIFT = Drift("gt", "rig show", ("--json",))  # nothing answered it: the plugin got exit 127
HANDED = Drift("gt", "hook show", ("--json",), DriftOutcome.HANDED, "/usr/local/bin/gt")  # a real gt answered it


def test_only_a_runs_own_processes_note_its_drift_and_report_labels_while_it_runs(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    run = claim_running(ledger, "drifter", "town", data={"token": "secret"}, now=BASE)
    for forged in ("forged", ""):
        with pytest.raises(GtError, match="GTUI_RUN_TOKEN does not match"):
            ledger.note_drift(run.id, forged, DRIFT)
        with pytest.raises(GtError, match="GTUI_RUN_TOKEN does not match"):
            ledger.report_run(run.id, forged, Report("failure", "forged"))
    assert ledger.note_drift(run.id, "secret", DRIFT, now=BASE + 1).data["drift"] == [{**DRIFT.to_json(), "at": BASE + 1}]
    reported = ledger.report_run(run.id, "secret", Report("warning", "drifted", "", ("team:dolt", "result:ok", "rig:gastown")))
    assert {"team:dolt", "rig:gastown", "result:running"} <= set(reported.labels) and "result:ok" not in reported.labels
    assert "rig:town" not in reported.labels  # one rig label, the reporter's, as a Gas Town receipt has one
    closed = ledger.close_run(run.id, "success", now=BASE + 2)
    assert (closed.result, closed.data["drift"][0]["verb"]) == ("warning", "rig show")  # the close keeps the notes
    assert "result:warning" in ledger.get(run.id).labels and "team:dolt" in ledger.get(run.id).labels
    with pytest.raises(GtError, match="has ended"):
        ledger.note_drift(run.id, "secret", DRIFT)
    with pytest.raises(NotFound):
        ledger.note_drift(run.id + 999, "secret", DRIFT)


def test_a_run_keeps_each_different_call_once_counted_and_counts_those_past_its_limit(tmp_path: Path) -> None:
    """A plugin calling one unanswered verb in a loop must neither grow its record nor hide the other verbs it calls."""
    ledger = open_ledger(tmp_path / "ledger.db")
    run = claim_running(ledger, "looper", "town", data={"token": "secret"}, now=BASE)
    for _ in range(30):
        ledger.note_drift(run.id, "secret", DRIFT, now=BASE + 1)
    for number in range(MAX_DRIFTS + 4):  # every one a different call
        ledger.note_drift(run.id, "secret", Drift("bd", f"verb-{number}"), now=BASE + 2)
    notes = ledger.note_drift(run.id, "secret", HANDED, now=BASE + 3).data
    assert len(notes["drift"]) == MAX_DRIFTS and notes["drift_more"] == {"error": 5, "warning": 1}  # past the limit, by level
    assert (notes["drift"][0]["count"], notes["drift"][0]["last_at"]) == (30, BASE + 1)
    assert [note["verb"] for note in notes["drift"][1:]] == [f"verb-{number}" for number in range(MAX_DRIFTS - 1)]
    closed = ledger.close_run(run.id, "success", now=BASE + 4)
    shown = run_problems(closed)
    assert "30 times" in shown[0].reason and shown[0].level == "error"
    assert [(problem.level, "more call(s)" in problem.reason) for problem in shown[-2:]] == [("error", True), ("warning", True)]
    assert "5 more call(s)" in shown[-2].reason and "1 more call(s)" in shown[-1].reason
    assert closed.result == "warning" and closed.data["reason"].startswith(f"{30 + MAX_DRIFTS - 1 + 5} call(s)")


@pytest.mark.parametrize("exit_result, reported, drift, final", [
    ("success", None, DRIFT, "warning"),  # nothing answered a call: never green
    ("success", "check-only", DRIFT, "warning"),
    ("success", "skipped", DRIFT, "skipped"),  # not green already
    ("failure", None, DRIFT, "failure"),
    ("success", None, HANDED, "success"),  # a real gt answered: a warning among its problems, the result stands
    ("success", None, Drift("gt", "plugin record-run", (), DriftOutcome.IGNORED, reason="2 word(s) no flag takes"), "success"),
    ("success", None, Drift("gt", "plugin record-run", ("--run-id",), DriftOutcome.REFUSED, reason="unknown flag: --run-id"),
     "warning"),
])
def test_a_run_that_would_end_green_with_a_call_left_unanswered_ends_warning(tmp_path: Path, exit_result: str, reported: str | None,
                                                                             drift: Drift, final: str) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    run = claim_running(ledger, "caller", "town", data={"token": "secret"}, now=BASE)
    ledger.note_drift(run.id, "secret", drift)
    if reported:
        ledger.report_run(run.id, "secret", Report(reported, "said so"))
    closed = ledger.close_run(run.id, exit_result, now=BASE + 1)
    assert closed.result == final
    assert ("got no answer from gtui" in (closed.data.get("reason") or "")) == (final == "warning")
    assert [problem.level for problem in run_problems(closed)] == [drift.level]


def test_the_last_report_wins_its_labels_too(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    run = claim_running(ledger, "twice", "town", data={"token": "secret"}, now=BASE)
    first = ledger.report_run(run.id, "secret", Report("success", "first", "", ("rig:gastown", "team:dolt")))
    assert {"rig:gastown", "team:dolt"} <= set(first.labels) and "rig:town" not in first.labels
    second = ledger.report_run(run.id, "secret", Report("warning", "second", "", ("scope:hq",)))
    assert {"rig:town", "scope:hq", "type:plugin-run", "plugin:twice"} <= set(second.labels)
    assert not {"rig:gastown", "team:dolt"} & set(second.labels)
    assert set(ledger.close_run(run.id, "success").labels) == {"type:plugin-run", "plugin:twice", "rig:town", "scope:hq",
                                                               "result:warning"}


def test_a_label_too_long_for_an_index_is_cut_alike_on_both_backends_and_said(tmp_path: Path) -> None:
    """PostgreSQL's index holds at most ~2.7 kB a row; SQLite holds anything: one cap, so both keep the same labels."""
    ledger = open_ledger(tmp_path / "ledger.db")
    long = "worker:" + os.urandom(4000).hex()  # incompressible, as a real report's may be
    run = claim_running(ledger, "quality", "town", data={"token": "secret"}, now=BASE)
    reported = ledger.report_run(run.id, "secret", Report("success", "scored", "", (long, "score:0.82")))
    assert long[:LABEL_CAP] in reported.labels and "score:0.82" in reported.labels
    (cut,) = [problem for problem in run_problems(ledger.close_run(run.id, "success")) if problem.field == "labels"]
    assert cut.level == "warning" and f"longer than {LABEL_CAP}" in cut.reason
    receipt = ledger.record_receipt(Receipt("quality-result", "gastown", Report("success", "r", "", (long,)), now=BASE))
    assert long[:LABEL_CAP] in receipt.labels and receipt.data["report"]["labels_cut"] == 1
    note = ledger.create("note", title="finding", labels=[long, "category:x"])
    assert set(ledger.get(note.id).labels) == {long[:LABEL_CAP], "category:x"}
    for plugin, rig in (("p" * 300, "town"), ("quality", "r" * 300)):
        with pytest.raises(Refused, match="characters long"):
            ledger.record_receipt(Receipt(plugin, rig, Report("success", "x"), now=BASE))


def test_a_statement_the_server_refuses_is_said_as_refused_never_as_an_unreachable_server(tmp_path: Path, storage: str) -> None:
    if storage != "postgresql":
        pytest.skip("a PostgreSQL server's answer")
    said = str(refused_statement(open_ledger(tmp_path / "ledger.db")))
    assert "statement timeout" in said and "cannot reach the server" not in said


def test_beads_filters(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    events = [
        ledger.create(
            "event", title=f"e{n}", status="closed" if n % 3 == 0 else "open", labels=["sev:high"] if n % 2 else ["sev:low"], now=BASE + n
        )
        for n in range(6)
    ]
    mail = ledger.create("mail", title="hello", labels=["to:mayor", "sev:high"], now=BASE + 100)
    runs_a = [ledger.claim_run("a", "town", now=BASE)]
    ledger.close_run(runs_a[0].id, "success")
    runs_a.append(ledger.claim_run("a", "town", now=BASE + 10))
    run_b = ledger.claim_run("b", "alpha", now=BASE + 20)

    def ids(beads: list[Bead]) -> list[int]:
        return [bead.id for bead in beads]

    assert ids(ledger.beads("event")) == ids(events[::-1])
    assert ids(ledger.beads("event", newest_first=False)) == ids(events)
    assert ids(ledger.beads("mail")) == [mail.id]
    assert ledger.beads("digest") == []
    assert ids(ledger.beads("event", status="open")) == [events[n].id for n in (5, 4, 2, 1)]
    assert ids(ledger.beads("event", status=["closed"])) == [events[3].id, events[0].id]
    assert ids(ledger.beads("event", status=("open", "closed"))) == ids(events[::-1])
    assert ids(ledger.beads("event", label="sev:high")) == [events[n].id for n in (5, 3, 1)]
    assert ids(ledger.beads("event", label="sev:high", status="open")) == [events[5].id, events[1].id]
    assert ids(ledger.beads("mail", label="sev:high")) == [mail.id]
    assert ledger.beads("event", label="no:such") == []
    assert ids(ledger.beads("event", limit=2)) == [events[5].id, events[4].id]
    assert ids(ledger.beads("event", limit=2, newest_first=False)) == [events[0].id, events[1].id]
    assert ids(ledger.beads("wisp", plugin="a")) == ids(runs_a[::-1])
    assert ids(ledger.beads("wisp", plugin="a", status="queued")) == [runs_a[1].id]
    assert ids(ledger.beads("wisp", label="rig:alpha")) == [run_b.id]
    assert ids(ledger.beads("wisp", label="plugin:a", limit=1)) == [runs_a[1].id]
    assert ids(ledger.runs("b")) == [run_b.id]
    assert ledger.beads("event", plugin="a") == []
    assert ledger.beads("event")[0].labels == ("sev:high",)
    assert ledger.beads("mail")[0].labels == ("sev:high", "to:mayor"), "labels come back sorted"


# -- many threads through one Ledger ----------------------------------------------------------

THREADS, PER_THREAD = 8, 100


def run_threads(target, count: int) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body(n: int) -> None:
        try:
            barrier.wait()
            target(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_many_threads_one_ledger(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")

    def work(n: int) -> None:
        for i in range(PER_THREAD):
            run = ledger.claim_run(f"thread-{n}", "town", labels=[f"seq:{i}"])
            ledger.close_run(run.id, "failure" if i % 4 == 0 else "success")

    assert run_threads(work, THREADS) == []
    runs = ledger.runs(limit=None)
    assert len(runs) == THREADS * PER_THREAD
    assert all(run.status == "closed" for run in runs)
    summary = ledger.plugin_summary()
    for n in range(THREADS):
        stats = summary[f"thread-{n}"]
        assert (stats.run_count, stats.failure_count, stats.last_result) == (PER_THREAD, PER_THREAD // 4, "success")
        assert {label for run in ledger.runs(f"thread-{n}", limit=None) for label in run.labels if label.startswith("seq:")} == {
            f"seq:{i}" for i in range(PER_THREAD)
        }


def test_threads_racing_for_one_plugin(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    winners: list[Bead] = []
    refused: list[int] = []

    def race(n: int) -> None:
        try:
            winners.append(ledger.claim_run("only-one", "town"))
        except RunInFlight:
            refused.append(n)

    assert run_threads(race, THREADS) == []
    assert len(winners) == 1 and len(refused) == THREADS - 1
    assert ledger.plugin_summary()["only-one"].run_count == 1


# -- errors are one clear LedgerError ----------------------------------------------------------


def assert_clean(error: LedgerError, path: Path, *words: str) -> None:
    message = str(error)
    assert str(path) in message, message
    assert "\n" not in message
    for word in words:
        assert word in message, message
    assert type(error).__module__ == "gtcore.core.errors", "a LedgerError, never the driver's own error"


@pytest.mark.sqlite_only
def test_corrupt_file(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    db.write_bytes(random.Random(3).randbytes(16384))
    with pytest.raises(LedgerError) as info:
        open_ledger(db)
    assert_clean(info.value, db, "corrupt")


@pytest.mark.sqlite_only
def test_corrupt_pages_behind_a_valid_header(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = open_ledger(db)
    for n in range(300):
        ledger.create("event", title=f"event {n}" * 20, labels=[f"n:{n}"])
    ledger.close()
    del ledger
    data = bytearray(db.read_bytes())
    assert data.startswith(b"SQLite format 3\x00") and len(data) > 8 * 4096
    page = 4096
    data[page:] = random.Random(5).randbytes(len(data) - page)  # keep page 1 (header + schema) intact
    db.write_bytes(bytes(data))
    with pytest.raises(LedgerError) as info:
        reopened = open_ledger(db)
        reopened.beads("event")
        reopened.plugin_summary()
        reopened.claim_run("p", "town")
    assert_clean(info.value, db)


@pytest.mark.sqlite_only
def test_parent_is_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "town"
    blocker.write_text("not a directory")
    for db in (blocker / "ledger.db", blocker / ".gtui" / "ledger.db"):
        with pytest.raises(LedgerError) as info:
            open_ledger(db)
        assert_clean(info.value, blocker)


@pytest.mark.sqlite_only
def test_ledger_path_is_a_directory(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    db.mkdir()
    with pytest.raises(LedgerError) as info:
        open_ledger(db)
    assert_clean(info.value, db)


ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.skipif(ROOT, reason="running as root: root ignores directory permissions, so chmod 0o500 cannot block the ledger")
def test_unwritable_directory(tmp_path: Path) -> None:
    state = tmp_path / ".gtui"
    state.mkdir()
    state.chmod(0o500)
    try:
        with pytest.raises(LedgerError) as info:
            open_ledger(state / "ledger.db")
        assert_clean(info.value, state / "ledger.db", "cannot be written")
    finally:
        state.chmod(0o700)


@pytest.mark.sqlite_only
def test_newer_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    open_ledger(db).close()
    set_schema_version(db, 99)
    with pytest.raises(LedgerError) as info:
        open_ledger(db)
    assert_clean(info.value, db, "99", "newer", "upgrade")


@pytest.mark.sqlite_only
def test_locked_for_good(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    open_ledger(db).close()
    open_before = open_ledger(db, wait=0.1)
    with lock_held_here(db):
        started = time.monotonic()
        assert open_ledger(db, wait=0.1).plugin_summary() == {}, "opening takes no write lock: reads go on beside a writer"
        with pytest.raises(LedgerError) as info:
            open_before.claim_run("p", "town")
        assert_clean(info.value, db, "locked")
        with pytest.raises(LedgerError, match="locked"):
            open_before.create("event", title="x")
        assert time.monotonic() - started < 5
        assert open_before.plugin_summary() == {}, "WAL readers are not blocked by a writer"
    assert open_before.claim_run("p", "town").status == "queued", "works again once the lock is gone"


@pytest.mark.sqlite_only
def test_a_writer_waits_a_bounded_time_and_names_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = open_ledger(db, wait=0.5)
    with lock_held_by_child(db) as holder:
        started = time.monotonic()
        with pytest.raises(LedgerError) as info:
            ledger.create("event", title="x")
        assert time.monotonic() - started < 3
        assert_clean(info.value, db, "locked", f"held by pid {holder.pid}", "after 0.5s")
        assert ledger.beads("event") == [], "reads are not blocked meanwhile"
    assert ledger.create("event", title="x").title == "x"


@pytest.mark.sqlite_only
def test_locked_fresh_file(tmp_path: Path) -> None:
    """A brand-new file held exclusively before it is even in WAL mode."""
    db = tmp_path / "ledger.db"
    with lock_held_here(db, squat=True), pytest.raises(LedgerError) as info:
        open_ledger(db, wait=0.1)
    assert_clean(info.value, db, "locked")


# -- schema and migrations ---------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_fresh_schema_and_idempotent_reopen(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "ledger.db"
    ledger = open_ledger(db)
    assert db.is_file()
    run = ledger.claim_run("p", "town")
    ledger.close()

    facts = file_facts(db)
    assert facts["user_version"] == SCHEMA_VERSION >= 1 and facts["journal_mode"] == "wal"
    schema = facts["schema"]
    names = {name for _, name, _ in schema}
    assert {"beads", "labels", "plugin_stats", "wisp_recorded", "wisp_result_changed", "one_run_in_flight", "deliveries", "run_ends",
            "readers", "kennels"} <= names

    for _ in range(2):
        again = open_ledger(db)
        assert again.get(run.id) == ledger.get(run.id)
        again.close()
    facts = file_facts(db)
    assert (facts["schema"], facts["user_version"], facts["beads"]) == (schema, SCHEMA_VERSION, 1)


@pytest.mark.sqlite_only
def test_wal_mode_after_writes_from_a_thread(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "ledger.db")
    thread = threading.Thread(target=lambda: ledger.create("event", title="from a thread"))
    thread.start()
    thread.join()
    assert file_facts(tmp_path / "ledger.db")["journal_mode"] == "wal"
    assert [bead.title for bead in ledger.beads("event")] == ["from a thread"]


WRITE_AND_CLOSE = """
import sys
from gtcore.storage import open_ledger

ledger = open_ledger(__import__("pathlib").Path(sys.argv[1]))
ledger.create("event", title="from the other process")
ledger.close()
"""


@pytest.mark.sqlite_only
def test_opening_the_ledger_again_keeps_this_processs_locks(tmp_path: Path) -> None:
    """Opening a Ledger must never open and close the file itself: that drops this process's SQLite locks, and
    another process closing its connection then thinks it is the last one and deletes the WAL we still read."""
    db = tmp_path / "ledger.db"
    first = open_ledger(db)
    first.create("event", title="ours")
    for _ in range(3):
        open_ledger(db).plugin_summary()  # what a test helper or a second command in the process does
    child = subprocess.run([sys.executable, "-c", WRITE_AND_CLOSE, str(db)], capture_output=True, text=True, timeout=30)
    assert child.returncode == 0, child.stderr
    assert db.with_name("ledger.db-shm").exists(), "the WAL index was deleted while this process still had the ledger open"
    assert sorted(bead.title for bead in first.beads("event")) == ["from the other process", "ours"]


@pytest.mark.sqlite_only
def test_migration_moves_pending_deliveries_into_their_table(tmp_path: Path) -> None:
    """A ledger of schema 4 kept pending deliveries in the escalation's JSON: after the upgrade they wait as rows, leased alone."""
    db = tmp_path / "ledger.db"
    ledger_at_version(db, 4)
    waiting = [{"channel": "email:human", "severity": "high", "attempts": 2, "next_at": 50.0},
               {"channel": "webhook:ops", "severity": "high", "attempts": 0, "next_at": 10.0}]
    data = {"severity": "high", "deliveries": [{"channel": "bead", "ok": True}], "pending": waiting}
    open_id = insert_raw_bead(db, "escalation", "disk full", "open", data, 1.0)
    closed_id = insert_raw_bead(db, "escalation", "old news", "closed", {**data, "pending": waiting[:1]}, 1.0)
    ledger = open_ledger(db)
    assert file_facts(db)["user_version"] == SCHEMA_VERSION
    assert ledger.get(open_id).data == {**data, "pending": waiting}, "the same deliveries, attempts and times"
    assert ledger.get(closed_id).data["pending"] == [], "a closed escalation sends nothing"
    leased = ledger.lease_deliveries(20.0, 120.0, route=lambda bead, severity: None)
    assert [(item.escalation_id, item.channel, item.attempts) for item in leased] == [(open_id, "webhook:ops", 0)]
    assert ledger.lease_deliveries(21.0, 120.0, route=lambda bead, severity: None) == [], "leased: not taken twice"
    assert "pending" not in bead_rows(db)[0][5], "the JSON no longer holds them"


@pytest.mark.sqlite_only
def test_migration_counts_each_plugin_s_failure_streak_from_the_runs_it_finds(tmp_path: Path) -> None:
    """A ledger of schema 6 had no streak: the upgrade counts it from the runs already there, and the triggers keep it."""
    db = tmp_path / "ledger.db"
    ledger_at_version(db, 6)
    for index, result in enumerate(("failure", "warning", "failure", "timeout", "abandoned", "skipped")):  # warning: it ran
        insert_old_run(db, "flaky", "closed", BASE + index, result=result)
    insert_old_run(db, "flaky", "closed", BASE + 7, result="abandoned", data={"reason": "stopped: by hand"})  # not counted
    insert_old_run(db, "fine", "closed", BASE, result="success")
    ledger = open_ledger(db)
    assert {name: stats.failure_streak for name, stats in ledger.plugin_summary().items()} == {"flaky": 3, "fine": 0}
    run = ledger.claim_run("flaky", "town", now=BASE + 10)
    assert ledger.plugin_summary()["flaky"].failure_streak == 3, "a run in flight changes nothing yet"
    ledger.close_run(run.id, "check-only")
    assert ledger.plugin_summary()["flaky"].failure_streak == 0


TEXT = st.text(st.characters(codec="utf-8"), max_size=40)  # NUL, controls, astral planes: whatever a plugin may write
# Numbers as runs record them (durations, times, counts): PostgreSQL's jsonb writes 7e16 back as an integer.
NUMBERS = st.integers(-(2**53), 2**53) | st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
JSON = st.recursive(st.none() | st.booleans() | NUMBERS | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=TEXT, body=TEXT, labels=st.lists(TEXT, max_size=3), data=st.dictionaries(TEXT, JSON, max_size=4))
def test_any_text_and_data_go_in_and_come_back(tmp_path: Path, storage: str, title: str, body: str, labels: list[str],
                                               data: dict) -> None:
    """Whatever a plugin writes is kept; PostgreSQL, which stores no NUL, keeps U+FFFD in its place (and nothing else changes)."""
    book = open_ledger(tmp_path / "ledger.db")
    try:
        back = book.get(book.create("note", title=title, body=body, labels=labels, data=data).id)
    finally:
        book.close()
    kept = _without_nul if storage == "postgresql" else (lambda value: value)
    assert (back.title, back.body) == (kept(title), kept(body))
    assert set(back.labels) == {kept(label) for label in labels}
    assert back.data == kept(data)


def _without_nul(value: Any) -> Any:
    """What PostgreSQL keeps of a value: every NUL of every string (keys too) as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


# -- the queue, takes, stops, what finished, the kennels -----------------------------------------


def test_a_queued_run_is_taken_once_and_a_second_take_is_refused(tmp_path: Path) -> None:
    one, two = open_ledger(tmp_path / "ledger.db"), open_ledger(tmp_path / "ledger.db")
    queued = one.claim_run("nightly", "town", data={"since": BASE})
    assert [run.id for run in one.queued_runs()] == [queued.id]
    with pytest.raises(RunInFlight):
        two.claim_run("nightly", "town")  # queued counts as in flight
    running = one.take_run(queued.id, {"dog": "rex", "owner": {"host": "a", "pid": 1}}, now=BASE + 1)
    assert (running.status, running.result, running.data["started_at"], running.data["since"]) == ("running", "running", BASE + 1, BASE)
    with pytest.raises(RunTaken, match="no longer queued"):
        two.take_run(queued.id, {"dog": "fido", "owner": {"host": "b", "pid": 2}})
    assert two.get(queued.id).data["owner"] == {"host": "a", "pid": 1}, "the second take changed nothing"
    assert one.queued_runs() == [] and [run.id for run in two.runs_in_flight()] == [queued.id]
    stats = one.plugin_summary()["nightly"]
    assert (stats.run_count, stats.last_result) == (1, "running")


def test_takes_racing_from_threads_give_each_run_to_one_taker(tmp_path: Path) -> None:
    book = open_ledger(tmp_path / "ledger.db")
    queued = [book.claim_run(f"p{n}", "town").id for n in range(20)]
    barrier = threading.Barrier(4)
    won: dict[int, list[int]] = {}

    def taker(me: int) -> None:
        mine = open_ledger(tmp_path / "ledger.db")
        barrier.wait()
        answers = mine.record_turn([], [], [Take(run_id, {"owner": {"host": "h", "pid": me}}) for run_id in queued])
        won[me] = [answer.id for answer in answers if isinstance(answer, Bead)]
        assert all(isinstance(answer, Bead | RunTaken) for answer in answers), answers

    threads = [threading.Thread(target=taker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    taken = sorted(run_id for ids in won.values() for run_id in ids)
    assert taken == queued, "each run taken exactly once"


def test_a_stop_request_closes_a_queued_run_and_marks_a_running_one_for_its_kennel(tmp_path: Path) -> None:
    book = open_ledger(tmp_path / "ledger.db")
    waiting = book.claim_run("waiting", "town")
    stopped = book.request_stop(waiting.id, "changed my mind", now=BASE)
    assert (stopped.status, stopped.result) == ("closed", "abandoned")
    assert stopped.data["reason"] == "stopped before a kennel took it: changed my mind"
    running = book.take_run(book.claim_run("running", "town").id, {"dog": "rex"})
    assert book.stop_requests([running.id]) == {}
    marked = book.request_stop(running.id, "ctrl+k", now=BASE)
    assert marked.status == "running" and marked.data["stop"] == {"reason": "ctrl+k", "at": BASE}
    assert book.stop_requests([running.id, waiting.id]) == {running.id: "ctrl+k"}
    book.close_run(running.id, "abandoned")
    assert book.stop_requests([running.id]) == {}
    assert book.request_stop(running.id, "again").result == "abandoned", "a closed run is left as it is"


def test_what_finished_is_given_to_each_reader_once_in_the_order_the_runs_ended(tmp_path: Path) -> None:
    book = open_ledger(tmp_path / "ledger.db")
    first, second, third = (book.claim_run(name, "town") for name in ("a", "b", "c"))
    book.close_run(second.id, "success")
    book.close_run(first.id, "failure")
    taken, more = book.take_finished("once", 10)
    assert ([run.id for run in taken], more) == ([second.id, first.id], False)  # by when they ended, not by id
    assert book.take_finished("once", 10) == ([], False)
    assert [run.id for run in book.take_finished("another", 10)[0]] == [second.id, first.id], "each reader has its own cursor"
    book.close_run(third.id, "success")
    book.close_run(third.id, "failure")  # a second close changes nothing: it is not a second end
    assert [run.id for run in book.take_finished("once", 10)[0]] == [third.id]
    for name in ("d", "e", "f"):
        book.close_run(book.claim_run(name, "town").id, "success")
    page, more = book.take_finished("once", 2)
    assert (len(page), more) == (2, True)
    rest, more = book.take_finished("once", 2)
    assert (len(rest), more) == (1, False)


def test_readers_racing_for_what_finished_each_get_a_share_and_nothing_twice(tmp_path: Path) -> None:
    book = open_ledger(tmp_path / "ledger.db")
    ended = [book.close_run(book.claim_run(f"p{n}", "town").id, "success").id for n in range(30)]
    barrier = threading.Barrier(3)
    got: list[int] = []
    lock = threading.Lock()

    def read() -> None:
        mine = open_ledger(tmp_path / "ledger.db")
        barrier.wait()
        while True:
            page, more = mine.take_finished("once", 4)
            with lock:
                got.extend(run.id for run in page)
            if not page and not more:
                return

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(got) == ended


def test_kennels_beat_one_per_host_and_are_forgotten_only_by_their_own_pid(tmp_path: Path) -> None:
    book = open_ledger(tmp_path / "ledger.db")
    before = book.clock()
    beat = book.beat_kennel("alpha", 10, BASE, {"dogs": [{"name": "rex"}]})
    assert before - 5 <= beat <= book.clock() + 5
    book.beat_kennel("beta", 20, BASE, {})
    book.beat_kennel("alpha", 11, BASE + 1, {"patrol": True})  # a new kennel on alpha replaces the old one
    assert [(item.host, item.pid, item.started_at, item.data) for item in book.kennels()] == [
        ("alpha", 11, BASE + 1, {"patrol": True}), ("beta", 20, BASE, {})]
    book.forget_kennel("alpha", 10)  # the old one saying goodbye late forgets nothing
    assert [item.pid for item in book.kennels()] == [11, 20]
    book.forget_kennel("alpha", 11)
    assert [item.host for item in book.kennels()] == ["beta"]


@pytest.mark.parametrize("version", range(1, PG_SCHEMA_VERSION))
def test_an_older_postgresql_ledger_is_upgraded_in_place_keeps_its_runs_and_gets_a_new_ledgers_schema(
        tmp_path: Path, storage: str, version: int, request: pytest.FixtureRequest) -> None:
    """Version 1 (the first schema) and every later one up to the current: the upgrade keeps what the ledger holds, and
    leaves the schema exactly as a ledger created by this gtui has it (columns, indexes, triggers, their functions)."""
    if storage != "postgresql":
        pytest.skip("the SQLite file's upgrades are test_old_ledger_files_are_migrated")
    url = os.environ["GT_LEDGER_URL"]
    postgres_at_version(url, version)
    insert_old_run(tmp_path / "unused.db", "old", "running", BASE)
    insert_old_run(tmp_path / "unused.db", "done", "closed", BASE)
    with pytest.raises(LedgerError, match=f"needs an upgrade to {PG_SCHEMA_VERSION}"):
        open_ledger(tmp_path / "unused.db", readonly=True)
    book = open_ledger(tmp_path / "unused.db")
    (old,) = book.runs("old")
    assert (old.status, [run.result for run in book.runs("done")]) == ("running", ["success"])
    with pytest.raises(RunInFlight):
        book.claim_run("old", "town")  # the running run of version 1 still blocks a second one
    queued = book.claim_run("new", "town")
    assert queued.status == "queued" and book.take_run(queued.id, {"dog": "rex"}).status == "running"
    book.close_run(old.id, "abandoned")
    ended_before = [run.id for run in book.runs("done")] if version >= 2 else []  # version 2 numbers ends: the closed run's too
    assert [run.id for run in book.take_finished("once", 10)[0]] == [*ended_before, old.id]
    assert {name: stats.failure_streak for name, stats in book.plugin_summary().items()} == {"old": 1, "done": 0, "new": 0}
    assert open_ledger(tmp_path / "unused.db").changes() is not None  # reopening finds the newest version: nothing to do
    book.beat_kennel("alpha", 10, BASE, {})  # a table of a later version
    assert [kennel.host for kennel in book.kennels()] == ["alpha"]
    fresh = postgres_schema(request.getfixturevalue("postgres_server"), f"fresh_{uuid.uuid4().hex[:16]}")
    ledger_at(fresh).close()
    upgraded, created = postgres_catalogue(url), postgres_catalogue(fresh)
    assert upgraded["version"] == [(PG_SCHEMA_VERSION,)]
    assert upgraded == created


def test_changes_moves_for_a_commit_that_came_after_a_reader_looked(tmp_path: Path) -> None:
    """Ledger.changes: a reader that looked while another writer's transaction was open sees the number move at its
    commit (a counter bumped inside that transaction would have moved before the look, and never again)."""
    path = tmp_path / "ledger.db"
    book = open_ledger(path)
    book.emit_event("first")
    with write_in_flight(path):
        before = book.changes()
        assert [bead.title for bead in book.beads("event")] == ["first"], "not committed yet: not seen"
    assert book.changes() != before
    assert {bead.title for bead in book.beads("event")} == {"first", "late"}
