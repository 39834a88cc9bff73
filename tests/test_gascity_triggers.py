"""Gas City's triggers on gtui's gates, with Gas City's reason words (``internal/orders/triggers.go``).

The pure decisions first (every trigger, every reason), then the real
``gtui --once`` on a fixture city: a condition run as ``sh -c`` in the city
root, and an event order read by ``seq`` from ``.gc/events.jsonl`` before and
after a rotation.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from citykit import bind_rigs, event, events, make_city, no_gc, order
from enginekit import gtui, runs
from hypothesis import given, settings
from hypothesis import strategies as st

from gtcore.gascity.city import load_city
from gtcore.gascity.eventlog import refresh
from gtcore.gascity.mapping import to_plugin
from gtcore.gascity.orderfile import Order
from gtcore.gascity.triggers import EventCount
from gtcore.gates.decisions import CheckResult, GateFacts
from gtcore.gates.rules import evaluate
from gtcore.model import GateState

NOW = 1_786_617_000.0  # 2026-08-13 10:30 UTC


def plugin_of(tmp_path: Path, city_toml: str = "", gc: str | None = "/usr/bin/gc", **fields: Any):  # type: ignore[no-untyped-def]
    """An order as gtui's plugin, in a city of its own (``gc`` as if found on PATH)."""
    city = make_city(tmp_path / "city", city_toml)
    made = to_plugin(Order(fields.pop("name", "o"), str(city / "orders/o.toml"), str(city / "formulas"), **fields),
                     load_city(city, {}), {}, gc, 7, set())
    assert made.__class__.__name__ == "Plugin", made
    return made


def decide(plugin, last: float | None = None, outside: object = None, now: float = NOW, **facts: Any):  # type: ignore[no-untyped-def]
    decision = evaluate(plugin, GateFacts(last, **facts), {}, now, outside)
    return decision.state, decision.reason


@pytest.mark.parametrize(("last", "state", "reason"), [
    (None, GateState.OPEN, "never run"),
    (NOW - 30, GateState.WAITING, "cooldown: 4m30s remaining"),
    (NOW - 302.4, GateState.OPEN, "elapsed 5m2s >= interval 5m0s"),
    (NOW - 299.6, GateState.WAITING, "cooldown: 0s remaining"),
    (NOW - 26 * 3600 - 187, GateState.OPEN, "elapsed 26h3m7s >= interval 5m0s"),
])
def test_cooldown_words(tmp_path: Path, last: float | None, state: GateState, reason: str) -> None:
    plugin = plugin_of(tmp_path, exec="x", trigger="cooldown", interval="5m")
    assert decide(plugin, last) == (state, reason)


def test_a_zero_interval_is_due_every_time_and_a_fraction_prints_as_go_prints_it(tmp_path: Path) -> None:
    zero = plugin_of(tmp_path, exec="x", trigger="cooldown", interval="0s")
    assert decide(zero, NOW - 1) == (GateState.OPEN, "elapsed 1s >= interval 0s")
    shutil.rmtree(tmp_path / "city")
    assert decide(plugin_of(tmp_path, exec="x", trigger="cooldown", interval="1.5s"), NOW - 2)[1] == "elapsed 2s >= interval 1.5s"


def test_cron_words_and_the_workspace_zone(tmp_path: Path) -> None:
    """``0 19 * * *`` at 10:30 UTC is 19:30 in Tokyo: the slot of half an hour ago is caught up in the city's zone."""
    plugin = plugin_of(tmp_path, 'timezone = "Asia/Tokyo"\n', exec="x", trigger="cron", schedule="0 19 * * *", tz="Asia/Tokyo")
    assert decide(plugin, NOW - 86400 + 60) == (GateState.OPEN, "cron: caught up missed occurrence")
    waiting = evaluate(plugin, GateFacts(NOW - 1200), {}, NOW)
    assert (waiting.state, waiting.reason, waiting.next_open_at) == (GateState.WAITING, "cron: schedule not matched", NOW - 1800 + 86400)
    bad = plugin._replace(order=plugin.order._replace(order=plugin.order.order._replace(schedule="0 19 * *")))
    assert decide(bad) == (GateState.ERROR, "bad cron schedule: want 5 fields, got 4")


@pytest.mark.parametrize(("check", "state", "reason"), [
    (None, GateState.WAITING, "check not run yet (the next patrol runs it)"),
    (CheckResult(0), GateState.OPEN, "condition: check passed (exit 0)"),
    (CheckResult(1), GateState.WAITING, "check command failed: exit status 1"),
    (CheckResult(-9), GateState.WAITING, "check command failed: signal: killed"),
    (CheckResult(None, timed_out=True), GateState.WAITING, "check command timed out after 10s"),
    (CheckResult(None, error="No such file or directory"), GateState.WAITING, "check command failed: No such file or directory"),
    (CheckResult(0, at=NOW - 120), GateState.WAITING,
     "last check (2m ago) passed (exit 0); its run started since, the next patrol checks again"),
    (CheckResult(1, at=NOW - 120), GateState.WAITING,
     "last check (2m ago) failed: exit status 1; its run started since, the next patrol checks again"),
    (CheckResult(0, at=NOW - 30), GateState.OPEN, "condition: check passed (exit 0)"),  # the last run came before the check
])
def test_condition_words(tmp_path: Path, check: CheckResult | None, state: GateState, reason: str) -> None:
    assert decide(plugin_of(tmp_path, exec="x", trigger="condition", check="true"), NOW - 60, outside=check) == (state, reason)


@pytest.mark.parametrize(("count", "state", "reason"), [
    (None, GateState.WAITING, "event: not counted yet (the next patrol reads .gc/events.jsonl)"),
    (EventCount(0, 7), GateState.WAITING, "event: no matching events"),
    (EventCount(3, 7), GateState.OPEN, "event: 3 bead.closed event(s)"),
])
def test_event_words(tmp_path: Path, count: EventCount | None, state: GateState, reason: str) -> None:
    plugin = plugin_of(tmp_path, exec="x", trigger="event", on="bead.closed")
    assert decide(plugin, outside=count) == (state, reason)
    assert plugin.tracking.labels == ("seq:7",)  # its run is claimed with the log's head: its cursor to be


def test_manual_and_webhook_never_open_by_themselves(tmp_path: Path) -> None:
    assert decide(plugin_of(tmp_path, exec="x", trigger="manual")) == (GateState.MANUAL, "manual trigger — use gc order run")
    shutil.rmtree(tmp_path / "city")
    hook = plugin_of(tmp_path, exec="x", trigger="webhook", params=(("repo", True),))
    assert decide(hook) == (GateState.MANUAL, "webhook trigger — dispatched by the webhook receiver")


def test_disabled_paused_running_and_blocked_orders_stay_closed_with_the_reason(tmp_path: Path) -> None:
    plugin = plugin_of(tmp_path, exec="x", trigger="cooldown", interval="1m", enabled=False)
    assert decide(plugin) == (GateState.DISABLED, "disabled by [[orders.overrides]] (enabled = false)")
    plugin = plugin._replace(enabled=True)
    assert decide(plugin, paused="maintenance") == (GateState.PAUSED, "paused by operator: maintenance")
    assert decide(plugin, running_run="run-4") == (GateState.RUNNING, "running (run-4)")
    shutil.rmtree(tmp_path / "city")
    suspended = plugin_of(tmp_path, "suspended = true\n", exec="x", trigger="cooldown", interval="1m")
    assert decide(suspended) == (GateState.DISABLED, "city suspended (gc dispatches no order of a suspended city)")
    shutil.rmtree(tmp_path / "city")
    formula = plugin_of(tmp_path, gc=None, formula="mol-x", trigger="cooldown", interval="1m")
    assert decide(formula) == (GateState.DISABLED, "formula order: gc is not on PATH (gtui runs formulas through gc order run)")
    shutil.rmtree(tmp_path / "city")
    unbound = plugin_of(tmp_path, '[[rigs]]\nname = "api"\n', exec="x", trigger="cooldown", interval="1m", rig="api")
    assert decide(unbound)[1] == ('rig "api" is declared but has no path binding — run `gc rig add <dir> --name api` to bind it before'
                                  " dispatching rig-scoped orders")


def test_suspension_is_read_as_gcs_dispatcher_reads_it(tmp_path: Path) -> None:
    """``GC_SUSPENDED=1``, then ``.gc/runtime/suspension-state.json``, then city.toml; a rig's from either place."""
    from gtcore.gascity.city import suspended_rigs

    city = make_city(tmp_path / "city", "suspended_on_start = true\n[[rigs]]\nname = \"api\"\nsuspended = true\n")
    assert load_city(city, {}).suspended and load_city(city, {}).rigs[0].suspended
    state = city / ".gc" / "runtime" / "suspension-state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"city": {"suspended": false}, "rigs": {"web": {"suspended": true}, "db": {"suspended": false}}}', encoding="utf-8")
    assert not load_city(city, {}).suspended and suspended_rigs(city) == {"web"}
    assert load_city(city, {"GC_SUSPENDED": "1"}).suspended
    bind_rigs(city, {"api": tmp_path / "api"})
    plugin = to_plugin(Order("o", str(city / "o.toml"), "", rig="api", exec="x", trigger="manual"), load_city(city, {}), {}, None, 0,
                       {"api"})
    assert decide(plugin) == (GateState.DISABLED, "rig api suspended")


# -- through gtui --once -------------------------------------------------------------------------------------------------


def gates(city: Path, *extra: str) -> dict[str, dict[str, Any]]:
    done = gtui(city, "--once", "--json", *extra)
    assert done.code == 0, done.err
    return {entry["name"]: entry["gate"] for entry in done.json()["plugins"]}


@pytest.fixture
def city(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    no_gc(monkeypatch)
    return make_city(tmp_path / "city")


def test_a_condition_runs_as_sh_c_in_the_city_root_or_the_rig_path(city: Path, tmp_path: Path) -> None:
    order(city / "orders", "has-marker", 'exec = "true"\ntrigger = "condition"\n'
                                         'check = "test -f marker && test \\"$GC_STORE_SCOPE\\" = city"')
    with open(city / "city.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[[rigs]]\nname = "api"\nformulas_dir = "api-pack/formulas"\n')
    order(city / "api-pack" / "orders", "rig-marker", 'exec = "true"\ntrigger = "condition"\ncheck = "test -f rig-marker"\n'
                                                      'check_timeout = "2s"')
    bind_rigs(city, {"api": tmp_path / "api"})
    assert gates(city, "--read-only")["has-marker"]["reason"] == "check command failed: exit status 1"
    (city / "marker").touch()
    (tmp_path / "api" / "rig-marker").touch()
    shown = gates(city, "--read-only")
    assert shown["has-marker"]["reason"] == "condition: check passed (exit 0); read-only: not dispatched"
    assert shown["rig-marker@api"]["open"] is True


def test_the_check_of_an_order_gc_would_not_dispatch_is_not_run(city: Path) -> None:
    """A suspended city's condition is not asked: a check is a command with its own effects."""
    order(city / "orders", "asked", f'exec = "true"\ntrigger = "condition"\ncheck = "touch {city / "asked-at-all"}"')
    (city / "city.toml").write_text('[workspace]\nname = "city"\nsuspended = true\n', encoding="utf-8")
    assert gates(city)["asked"]["reason"] == "city suspended (gc dispatches no order of a suspended city)"
    assert not (city / "asked-at-all").exists()


def test_a_check_past_its_timeout_is_killed_and_said(city: Path) -> None:
    order(city / "orders", "slow", 'exec = "true"\ntrigger = "condition"\ncheck = "sleep 5"\ncheck_timeout = "200ms"')
    assert gates(city, "--read-only")["slow"]["reason"] == "check command timed out after 200ms"


def test_an_event_order_reads_the_log_by_seq_across_a_rotation(city: Path) -> None:
    proof = city / "fired"
    order(city / "orders", "on-close", f'exec = "echo fired >> {proof}"\ntrigger = "event"\non = "bead.closed"')
    events(city, event(1, "bead.created"), event(2, "bead.closed"),
           event(3, "bead.closed", payload={"id": "mc-1", "labels": ["order-tracking"]}),  # gc's own bookkeeping: never counted
           event(4, "bead.closed", payload={"bead": {"labels": ["order-tracking"]}}))  # a hook's payload: counted, as in gc
    first = gates(city, "--wait")["on-close"]
    assert (first["reason"], first["state"]) == ("event: 2 bead.closed event(s)", "open")
    assert runs(city, "on-close")[0].labels.count("seq:4") == 1  # its cursor: the log's head when it fired
    assert gates(city)["on-close"]["reason"] == "event: no matching events"
    events(city, event(5, "bead.closed"), event(6, "bead.updated"))
    log = city / ".gc" / "events.jsonl"
    with open(log, "rb") as source, gzip.open(city / ".gc" / "events.jsonl.archive-20260813T115200Z-seq-1-6.gz", "wb") as archive:
        archive.write(source.read())
    log.unlink()  # rotated: the active file starts again, seq going on
    events(city, event(7, "events.rotated", payload={"prior_first_seq": 1, "prior_last_seq": 6}), event(8, "bead.closed"),
           name="events.jsonl.rotating-20260813T115300Z-seq-7-8")  # rotated again, not gzipped yet
    events(city, event(9, "bead.closed"))
    assert gates(city, "--wait")["on-close"]["reason"] == "event: 3 bead.closed event(s)"  # 5 from the archive, 8 and 9
    assert gates(city)["on-close"]["reason"] == "event: no matching events"
    assert proof.read_text(encoding="utf-8") == "fired\nfired\n"


def test_the_log_reader_takes_whole_lines_and_keeps_its_place(tmp_path: Path) -> None:
    city = tmp_path / "city"
    log = events(city, event(1, "bead.closed"))
    with open(log, "a", encoding="utf-8") as handle:
        handle.write('{"seq":2,"type":"bead.closed"')  # the writer is still at it
    state = tmp_path / "state.json"
    wanted = frozenset({"bead.closed"})
    assert refresh(city, state, wanted).seqs == {"bead.closed": (1,)}
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(',"ts":"x"}\nnot json\n' + json.dumps({"seq": 3, "type": "bead.closed"}) + "\n")
    snapshot = refresh(city, state, wanted)
    assert (snapshot.head, snapshot.seqs, snapshot.events_after("bead.closed", 1)) == (3, {"bead.closed": (1, 2, 3)}, 2)
    assert json.loads(state.read_text(encoding="utf-8"))["offset"] == log.stat().st_size
    copy = log.with_name("copy")
    copy.write_bytes(log.read_bytes() + (json.dumps({"seq": 4, "type": "bead.closed"}) + "\n").encode())
    copy.replace(log)  # a new file (another inode) holding what was read and one more: read from its start, counted once
    assert refresh(city, state, wanted).seqs == {"bead.closed": (1, 2, 3, 4)}
    assert refresh(city, state, frozenset({"bead.updated"})).seqs == {"bead.updated": ()}  # another type: read from the start


def test_a_damaged_reader_state_is_read_again_from_the_start(tmp_path: Path) -> None:
    city = tmp_path / "city"
    events(city, event(1, "bead.closed"), event(2, "bead.closed"))
    state = tmp_path / "state.json"
    state.write_text('{"wanted": ["bead.closed"], "read_to": "many"}', encoding="utf-8")
    assert refresh(city, state, frozenset({"bead.closed"})).seqs == {"bead.closed": (1, 2)}


def test_every_trigger_through_once_with_gas_citys_words(city: Path) -> None:
    order(city / "orders", "often", 'exec = "true"\ntrigger = "cooldown"\ninterval = "1h"')
    order(city / "orders", "by-hand", 'exec = "true"\ntrigger = "manual"')
    order(city / "orders", "hooked", 'exec = "true"\ntrigger = "webhook"\n[order.params]\nrepo = { required = true }')
    order(city / "orders", "waiting", 'exec = "true"\ntrigger = "event"\non = "deploy.done"')
    first = gates(city, "--wait")
    assert first["often"]["reason"] == "never run"
    assert first["by-hand"] == {"type": "manual", "open": False, "state": "manual", "reason": "manual trigger — use gc order run",
                                "next_open_at": None}
    assert first["hooked"]["reason"] == "webhook trigger — dispatched by the webhook receiver"
    assert first["waiting"]["reason"] == "event: no matching events"
    second = gates(city)["often"]
    assert re.fullmatch(r"cooldown: (1h0m0s|59m\d{1,2}s) remaining", second["reason"]), second["reason"]
    assert second["next_open_at"] is not None
    assert abs(time.time() + 3600 - _epoch(second["next_open_at"])) < 120


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.builds(
    lambda seq, kind, labels: json.dumps({"seq": seq, "type": kind, "payload": {"labels": labels}}).encode(),
    st.integers(-3, 50), st.sampled_from(["bead.closed", "bead.updated", 7]),
    st.lists(st.sampled_from(["order-tracking", "x"]), max_size=2))), max_size=30))
def test_any_log_is_read_without_raising_and_counts_only_whole_wanted_events(tmp_path_factory: pytest.TempPathFactory,
                                                                             lines: list[bytes]) -> None:
    city = tmp_path_factory.mktemp("city")
    (city / ".gc").mkdir()
    (city / ".gc" / "events.jsonl").write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    snapshot = refresh(city, city / "state.json", frozenset({"bead.closed"}))
    counted = snapshot.seqs["bead.closed"]
    assert all(isinstance(seq, int) and 0 < seq <= snapshot.head for seq in counted)  # every event counted is within the head
    again = refresh(city, city / "state.json", frozenset({"bead.closed"}))
    assert again.seqs == snapshot.seqs  # nothing new: nothing counted twice
