"""gtui with ``gc`` on PATH (the fake of ``tests/fake_gc.py``, written from gc's flags and JSON shapes).

- ``gc order list --json`` is the resolved set: an order of a remote pack,
  which gtui cannot resolve itself, is listed and run from where gc says.
- ``gc order run NAME [--rig R] --json`` runs a formula order; the wisp is
  recorded on the run.
- Taking over: the last run gc made is imported (``gc order history``, else
  the events log's ``order.fired``), so a cooldown does not fire at once.
- ``order.fired`` / ``order.completed`` / ``order.failed`` go back through
  ``gc event emit`` as gc's dispatcher records them.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from citykit import event, events, gc_calls, gc_history, gc_rows, make_city, no_gc, order, pack
from enginekit import gtui, runs, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st

from gtcore.gascity.takeover import _time

CORE = "https://github.com/gastownhall/gascity/tree/main/internal/bootstrap/packs/core"


@pytest.fixture
def city(tmp_path: Path) -> Path:
    """A city whose own pack.toml imports a remote pack (its cache is outside the city) and has an order of its own."""
    root = make_city(tmp_path / "city")
    (root / "pack.toml").write_text(f'[pack]\nname = "city"\nschema = 2\n[imports.core]\nsource = "{CORE}"\n', encoding="utf-8")
    order(root / "orders", "local", 'exec = "echo local"\ntrigger = "manual"')
    return root


def cached_core(tmp_path: Path) -> Path:
    """Where gc keeps the remote pack (gtui cannot compute the cache key: gc's list says where)."""
    core = pack(tmp_path / "gc-home" / "cache" / "repos" / "0123abcd" / "internal" / "bootstrap" / "packs" / "core", "core")
    order(core / "orders", "health", 'exec = "echo healthy in $PWD from $PACK_DIR"\ntrigger = "cooldown"\ninterval = "30s"\n'
                                     'timeout = "60s"')
    return core


def row(name: str, source: Path, **fields: Any) -> dict[str, Any]:
    """One row of gc's resolved set (``orderJSON`` fields)."""
    return {"name": name, "source": str(source), "formula_layer": str(source.parent.parent / "formulas"), **fields}


def listing(city: Path) -> dict[str, Any]:
    done = gtui(city, "plugin", "list", "--json")
    assert done.code == 0, done.err
    return done.json()


def test_gc_order_list_is_the_resolved_set_and_without_gc_the_remote_pack_is_said(city: Path, tmp_path: Path, fake_gc: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    core = cached_core(tmp_path)
    gc_rows(fake_gc, row("health", core / "orders/health.toml", exec="echo healthy in $PWD from $PACK_DIR", trigger="cooldown",
                         interval="30s", timeout="60s"),
            row("local", city / "orders/local.toml", exec="echo local", trigger="manual"),
            row("vanished", city / "orders/vanished.toml", exec="true", trigger="manual"))  # its file went away after gc read it
    order(city / "orders", "broken", 'trigger = "manual"')  # gc drops it too: listed once, from gtui's own reading
    (fake_gc / "list-stderr.txt").write_text('gc order list: order ghost: order "ghost": formula or exec is required\n'
                                             'gc order list: order broken: order "broken": formula or exec is required\n', encoding="utf-8")
    shown = listing(city)
    orders = {entry["name"]: entry for entry in shown["plugins"]}
    assert set(orders) == {"health", "local", "vanished"}  # gc's word stands where the file cannot be read again
    assert (orders["health"]["gate"], orders["health"]["order"]["formula_layer"]) == ({"type": "cooldown", "duration": "30s"},
                                                                                      str(core / "formulas"))
    assert sorted(entry["error"] for entry in shown["invalid"]) == [
        'gc order list dropped it: order ghost: order "ghost": formula or exec is required',
        'order "broken": formula or exec is required']
    assert gc_calls(fake_gc, "order", "list") == [["--city", str(city), "order", "list", "--json"]]
    done = gtui(city, "plugin", "run", "health", "--json")
    assert done.json()["result"] == "success"
    assert gtui(city, "plugin", "log", "health").out.strip() == f"healthy in {city} from {core}"
    no_gc(monkeypatch)
    without = listing(city)
    assert [entry["name"] for entry in without["plugins"]] == ["local"]
    assert any("[imports.core]" in warning and "remote pack" in warning for warning in without["warnings"])


def test_gc_is_asked_again_only_when_what_it_reads_changed(city: Path, fake_gc: Path) -> None:
    gc_rows(fake_gc, row("local", city / "orders/local.toml", exec="echo local", trigger="manual"))
    listing(city)
    listing(city)
    assert len(gc_calls(fake_gc, "order", "list")) == 1
    time.sleep(0.01)  # a new mtime (nanoseconds) for the file written next: the identity gc's answer is kept by
    order(city / "orders", "added", 'exec = "true"\ntrigger = "manual"')
    listing(city)
    assert len(gc_calls(fake_gc, "order", "list")) == 2


def test_a_read_only_look_keeps_nothing_of_gcs_answer(city: Path, fake_gc: Path) -> None:
    gc_rows(fake_gc, row("local", city / "orders/local.toml", exec="echo local", trigger="manual"))
    assert [entry["name"] for entry in gtui(city, "--read-only", "plugin", "list", "--json").json()["plugins"]] == ["local"]
    assert not (city / ".gtui").exists()


def test_when_gc_order_list_fails_gtui_reads_the_city_itself_and_says_so(city: Path, fake_gc: Path) -> None:
    (fake_gc / "list-fails").write_text("unsupported PackV1 order paths (1); migrate ...\n", encoding="utf-8")
    shown = listing(city)
    assert [entry["name"] for entry in shown["plugins"]] == ["local"]
    assert "gc order list: unsupported PackV1 order paths (1); migrate ...; gtui read the city's own and local pack directories" \
           " instead" in shown["warnings"]
    assert listing(city)["warnings"] == shown["warnings"]
    assert len(gc_calls(fake_gc, "order", "list")) == 1  # a refusal is kept as an answer is: gc is asked again when something changed


def test_a_formula_order_runs_through_gc_order_run_and_its_wisp_is_recorded(city: Path, tmp_path: Path, fake_gc: Path) -> None:
    order(city / "orders", "digest", 'formula = "mol-digest"\ntrigger = "manual"\npool = "worker"')
    gc_rows(fake_gc, row("digest", city / "orders/digest.toml", formula="mol-digest", trigger="manual", target="worker",
                         routed_to="worker", wisp_prefix="gc"),
            row("digest", city / "orders/digest.toml", rig="api", formula="mol-digest", trigger="manual", wisp_prefix="api"))
    with open(city / "city.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[[rigs]]\nname = "api"\npath = "api"\n')
    (city / "api").mkdir()
    done = gtui(city, "plugin", "run", "digest", "--json")
    shown = done.json()
    assert (done.code, shown["result"]) == (0, "success"), done.err
    wisp = next(label[5:] for label in shown["labels"] if label.startswith("wisp:"))
    assert shown["summary"] == f"wisp {wisp} → gc.routed_to=worker" and wisp.startswith("gc-w")
    assert json.loads(shown["detail"]) == {"schema_version": "1", "ok": True, "order": "digest", "scoped_name": "digest",
                                           "action": "formula", "wisp_id": wisp, "routed_to": "worker"}
    assert gc_calls(fake_gc, "order", "run") == [["--city", str(city), "order", "run", "digest", "--json"]]
    rig_run = gtui(city, "plugin", "run", "digest@api", "--json").json()
    assert rig_run["summary"].startswith("wisp api-w")
    assert gc_calls(fake_gc, "order", "run")[-1] == ["--city", str(city), "order", "run", "digest", "--rig", "api", "--json"]


def test_without_gc_a_formula_order_is_listed_with_the_reason_and_a_run_by_hand_is_skipped(city: Path,
                                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    no_gc(monkeypatch)
    order(city / "orders", "digest", 'formula = "mol-digest"\ntrigger = "cooldown"\ninterval = "1m"')
    done = gtui(city, "--once", "--json")
    gate = next(entry["gate"] for entry in done.json()["plugins"] if entry["name"] == "digest")
    assert (gate["state"], gate["reason"]) == ("disabled", "formula order: gc is not on PATH (gtui runs formulas through gc order run)")
    assert any(problem["reason"].startswith("gc is not on PATH: formula orders cannot run") for problem in done.json()["problems"])
    forced = gtui(city, "plugin", "run", "digest", "--json").json()
    assert (forced["result"], forced["reason"]) == ("skipped", "formula order: gc is not on PATH (gtui runs formulas through gc order run)")


def test_taking_over_imports_gcs_last_runs_so_cooldowns_do_not_all_fire_at_once(city: Path, fake_gc: Path) -> None:
    order(city / "orders", "sweep", 'exec = "true"\ntrigger = "cooldown"\ninterval = "1h"')
    order(city / "orders", "fresh", 'exec = "true"\ntrigger = "cooldown"\ninterval = "1h"')
    order(city / "orders", "on-close", 'exec = "true"\ntrigger = "event"\non = "bead.closed"')
    order(city / "orders", "by-hand", 'exec = "true"\ntrigger = "manual"')
    order(city / "orders", "on-update", 'exec = "true"\ntrigger = "event"\non = "bead.closed"')
    gc_rows(fake_gc, *(row(name, city / f"orders/{name}.toml", exec="true", trigger="cooldown", interval="1h")
                       for name in ("sweep", "fresh")),
            *(row(name, city / f"orders/{name}.toml", exec="true", trigger="event", on="bead.closed")
              for name in ("on-close", "on-update")),
            row("by-hand", city / "orders/by-hand.toml", exec="true", trigger="manual"))
    ran_at = time.time() - 600
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ran_at)) + ".123456789Z"
    gc_history(fake_gc, {"order": "sweep", "bead_id": "gc-3hb", "created_at": stamp},
               {"order": "on-update", "bead_id": "gc-9zz", "created_at": stamp},  # no order.fired of it: the cursor is the log's head
               {"order": "sweep", "bead_id": "gc-2aa", "created_at": "2020-01-01T00:00:00Z"})
    events(city, event(40, "bead.closed"), event(41, "order.fired", subject="on-close", ts=stamp), event(42, "bead.closed"))
    gates = {entry["name"]: entry["gate"] for entry in gtui(city, "--once", "--json").json()["plugins"]}
    assert gates["sweep"]["reason"] in ("cooldown: 50m0s remaining", "cooldown: 49m59s remaining")
    assert gates["fresh"]["reason"] == "never run"  # gc never ran it: it runs now
    assert gates["on-close"]["reason"] == "event: 1 bead.closed event(s)"  # only what came after gc last fired it
    assert gates["on-update"]["reason"] == "event: no matching events"  # what came before the takeover counts as handled
    assert runs(city, "on-update")[0].labels.count("seq:42") == 1
    history = gtui(city, "plugin", "history", "sweep", "--json").json()["runs"]
    assert [(run["result"], run["summary"]) for run in history] == [("success", "imported from Gas City: gc order history: tracking bead"
                                                                                " gc-3hb")]
    imported = runs(city, "sweep")[0]
    assert (imported.body, imported.data["actor"]) == ("imported from Gas City: gc order history: tracking bead gc-3hb", "gascity")
    assert abs(imported.created_at - ran_at) < 1
    assert gc_calls(fake_gc, "order", "history", "sweep") == [["--city", str(city), "order", "history", "sweep", "--limit", "1",
                                                               "--json"]]
    gtui(city, "--once", "--json")
    assert len(gc_calls(fake_gc, "order", "history", "by-hand")) == 1  # gc had nothing: asked once, not on every patrol


def test_without_gc_the_events_log_is_where_the_last_runs_are_read(city: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_gc(monkeypatch)
    order(city / "orders", "sweep", 'exec = "true"\ntrigger = "cooldown"\ninterval = "1h"')
    order(city / "orders", "on-close", 'exec = "true"\ntrigger = "event"\non = "bead.closed"')
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 60)) + ".5-00:00"
    events(city, event(7, "bead.closed"), event(8, "order.fired", subject="sweep", ts=stamp))
    gates = {entry["name"]: entry["gate"]["reason"] for entry in gtui(city, "--once", "--json").json()["plugins"]}
    assert gates["sweep"].startswith("cooldown: 5") and gates["sweep"].endswith("s remaining")
    assert runs(city, "sweep")[0].body == "imported from Gas City: .gc/events.jsonl: order.fired seq 8"
    assert gates["on-close"] == "event: 1 bead.closed event(s)"  # gc never fired it: all retained history counts


def test_order_events_are_written_back_with_gc_event_emit(city: Path, fake_gc: Path) -> None:
    order(city / "orders", "good", 'exec = "true"\ntrigger = "manual"')
    order(city / "orders", "bad", 'exec = "exit 2"\ntrigger = "manual"')
    order(city / "orders", "late", 'exec = "sleep 5"\ntrigger = "manual"\ntimeout = "200ms"')
    order(city / "orders", "on-close", 'exec = "exit 1"\ntrigger = "event"\non = "bead.closed"')
    events(city, event(1, "bead.closed"))
    gc_rows(fake_gc, row("good", city / "orders/good.toml", exec="true", trigger="manual"),
            row("bad", city / "orders/bad.toml", exec="exit 2", trigger="manual"),
            row("late", city / "orders/late.toml", exec="sleep 5", trigger="manual", timeout="200ms"),
            row("on-close", city / "orders/on-close.toml", exec="exit 1", trigger="event", on="bead.closed"))
    for name in ("on-close", "good", "bad", "late"):  # the event order first: its cursor is the log's head, seq 1, before any write-back
        gtui(city, "plugin", "run", name)
    wait_for(lambda: len(gc_calls(fake_gc, "event", "emit")) == 8, 15, "eight order events")
    emitted = gc_calls(fake_gc, "event", "emit")
    expected = [["order.fired", "on-close", None], ["order.failed", "on-close", "seq=1: exit status 1"],  # its cursor first, as gc's
                ["order.fired", "good", None], ["order.completed", "good", None], ["order.fired", "bad", None],
                ["order.failed", "bad", "exit status 2"], ["order.fired", "late", None],
                ["order.failed", "late", "context deadline exceeded"]]
    assert [[argv[4], argv[6], argv[argv.index("--message") + 1] if "--message" in argv else None] for argv in emitted] == expected
    assert all(argv[:4] == ["--city", str(city), "event", "emit"] and argv[7:9] == ["--actor", "controller"] for argv in emitted)
    written = [json.loads(line) for line in (city / ".gc" / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(item["seq"], item["type"], item.get("subject"), item["actor"]) for item in written][3:5] == [
        (4, "order.fired", "good", "controller"), (5, "order.completed", "good", "controller")]
    assert "payload" not in written[3]


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)), st.integers(0, 999_999_999),
       st.integers(-14 * 60, 14 * 60), st.booleans())
def test_gcs_times_are_read_to_the_microsecond(moment: datetime, nanos: int, offset_minutes: int, zulu: bool) -> None:
    """RFC 3339 as Go writes it (``RFC3339Nano``: up to nine digits, trailing zeros dropped; ``Z`` or an offset)."""
    zone = UTC if zulu else timezone(timedelta(minutes=offset_minutes))
    whole = moment.replace(microsecond=0, tzinfo=zone)
    fraction = f".{nanos:09d}".rstrip("0").rstrip(".")
    text = whole.strftime("%Y-%m-%dT%H:%M:%S") + fraction + ("Z" if zulu else whole.strftime("%z")[:3] + ":" + whole.strftime("%z")[3:])
    parsed = _time(text)
    assert parsed is not None and abs(parsed - (whole.timestamp() + nanos / 1e9)) < 2e-6
    assert _time("yesterday") is None
