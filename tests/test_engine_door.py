"""What the faces ask the Engine for: the answers its own parts would give, behind one door.

Real towns, a real ledger written from a second connection (as another
process would), real patrols and condition checks.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from enginekit import add_plugin, ledger, make_town
from kennelkit import start_kennel

from gtcore.core.errors import NotFound, RunInFlight
from gtcore.core.events import EventBus, PluginSetChanged
from gtcore.engine import Engine
from gtcore.model import GateState, Town
from gtcore.patrol.cycle import Patrol
from gtcore.plugins.cache import PluginCache


@pytest.fixture
def town(tmp_path: Path) -> Path:
    town = make_town(tmp_path / "town")
    add_plugin(town, "ready", 'type = "condition"\ncheck = "echo ready to go"', run_sh="echo ran\n")
    add_plugin(town, "hand", 'type = "manual"')
    add_plugin(town, "cool", 'type = "cooldown"\nduration = "1h"', run_sh="exit 4\n")
    return town


def test_the_changes_token_moves_when_another_process_writes_and_only_then(town: Path) -> None:
    engine = Engine(Town(town))
    start_kennel(town)
    try:
        before = engine.changes()
        assert engine.changes() == before  # reading changes nothing
        ledger(town).emit_event("deploy", source="elsewhere", now=time.time())
        assert engine.changes() != before
    finally:
        engine.close()


def test_gate_decisions_are_the_patrols_with_its_condition_answers(town: Path) -> None:
    engine = Engine(Town(town))
    start_kennel(town)
    try:
        before = engine.gate_decisions(engine.plugins().plugins, engine.summary(), engine.runs_in_flight(), engine.paused(), time.time())
        report = engine.patrol_once(wait=True)
        now = time.time()
        after = engine.gate_decisions(engine.plugins().plugins, engine.summary(), engine.runs_in_flight(), engine.paused(), now)
    finally:
        engine.close()
    assert {name: decision.state for name, decision in before.items()} == {
        "ready": GateState.WAITING, "hand": GateState.MANUAL, "cool": GateState.OPEN}  # no check has run yet
    assert {item.plugin.name: item.decision.state for item in report.plugins} == {
        "ready": GateState.OPEN, "hand": GateState.MANUAL, "cool": GateState.OPEN}
    assert after["cool"].state is GateState.WAITING and after["cool"].next_open_at == pytest.approx(now + 3600, abs=60)
    assert after["ready"].state is GateState.WAITING and "passed: ready to go; its run started since" in after["ready"].reason


def test_a_read_only_gtui_says_it_runs_no_check(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "ready", 'type = "condition"\ncheck = "echo ready"')
    engine = Engine(Town(town), readonly=True)
    try:
        decided = engine.gate_decisions(engine.plugins().plugins, engine.summary(), [], {}, time.time())
    finally:
        engine.close()
    assert decided["ready"].reason.startswith("no check known yet: a gtui that only reads (--read-only, plugin list) runs none")


def test_a_run_is_found_by_its_ref_or_number_and_its_log_and_digest_through_the_engine(town: Path) -> None:
    engine = Engine(Town(town))
    start_kennel(town)
    try:
        engine.patrol_once(wait=True)
        (latest,) = engine.runs("cool", limit=1)
        assert engine.run(latest.ref) == engine.run(latest.id) == latest
        assert latest.result == "failure" and engine.log_path(latest) == latest.data["log"]
        assert engine.run_log(latest) == engine.log_tail(latest, 4096, 30) == ""  # exit 4, printed nothing
        with pytest.raises(NotFound):
            engine.run("esc-1")
        assert engine.digests("cool") == []
    finally:
        engine.close()


def test_a_patrol_needs_no_engine_only_what_it_uses(town: Path) -> None:
    """Handed its parts, a patrol scans, decides, publishes its scan and queues through the callable it was given."""
    root = Town(town)
    bus = EventBus()
    heard: list[object] = []
    bus.subscribe(heard.append, PluginSetChanged)
    engine = Engine(root)  # only for its scan and settings: the patrol itself never sees it
    handed: list[str] = []

    def queue(requests: list) -> list:
        handed.extend(plugin.name for plugin, *_ in requests)
        return [RunInFlight("another patrol queued it") for _ in requests]

    patrol = Patrol(root, engine.ledger, bus, PluginCache(root.state_dir / "plugins.cache", writable=False),
                    scan=engine.plugins, settings=lambda: engine.settings, escalations=lambda: engine.escalations,
                    queue=queue, wait=lambda run_ids, follow=None: {}, owns_run=lambda run_id: False, recover=lambda: [],
                    kennel_problem=lambda: None,
                    call_kennel=lambda: None)
    try:
        report = patrol.run_once()
    finally:
        engine.close()
    assert sorted(handed) == ["cool", "ready"]  # the condition's check ran in this patrol, and passed
    assert {item.plugin.name: item.note for item in report.plugins if item.decision.open} == {
        "cool": "already queued or running", "ready": "already queued or running"}
    assert len(heard) == 1 and {plugin.name for plugin in heard[0].plugins.plugins} == {"ready", "hand", "cool"}
