"""Digests and retention on a real ledger: squashing past UTC days, late wisps, the CLI, the patrol.

Runs are written through the real API (``claim_run`` then ``close_run`` with an explicit ``now``),
each with a real log file.  Days are counted back from the real clock, because ``gtui plugin
digest --yesterday`` reads it; every "expected" set is computed from the timestamps written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from enginekit import claim_running

from gtcore.core.errors import GtError, NotFound
from gtcore.digest import DAY, day_bounds, digest_title, digests, make_digest, prune, undigested_days, utc_day
from gtcore.engine import Engine
from gtcore.escalation.escalations import Escalations
from gtcore.gates.decisions import GateDecision, GateFacts
from gtcore.gates.rules import evaluate
from gtcore.model import Bead
from gtcore.patrol.cycle import gate_facts
from gtcore.plugins.discovery import discover
from gtcore.storage import open_ledger
from gtcore.storage.contract import Ledger
from gtcore.town.layout import Town
from gtcore.town.settings import load_settings
from gtui.cli import main

pytestmark = pytest.mark.usefixtures("storage")  # every test here runs against each storage backend

DIGESTED = ("alpha", "bravo", "sleeper")  # plugins with [tracking] digest = true in the scene
EXIT_CODES = {"success": 0, "failure": 1, "timeout": -15, "skipped": None, "abandoned": None}
# (plugin, hour, minute, duration in seconds, result): what each of the three past days holds
DAY_PLAN = (
    ("alpha", 1, 0, 2.0, "success"),
    ("alpha", 5, 0, 4.0, "failure"),
    ("alpha", 9, 0, 9.0, "success"),
    ("bravo", 2, 0, 1.5, "success"),
    ("bravo", 23, 59, 30.0, "timeout"),  # started before midnight, ended after: belongs to its start day
    ("chatty", 3, 0, 1.0, "success"),
    ("chatty", 4, 0, 1.0, "failure"),
)


# -- towns and runs on disk ------------------------------------------------------------------------


def make_town(root: Path, settings: str = "") -> Path:
    (root / "settings").mkdir(parents=True)
    (root / "settings" / "gtui.toml").write_text(settings, encoding="utf-8")
    return root


def add_plugin(town: Path, name: str, *, digest: bool | None, gate: str = 'type = "manual"') -> Path:
    """A plugin with ``[tracking] digest = ...`` (no [tracking] at all when None); manual gates never dispatch."""
    directory = town / "plugins" / name
    directory.mkdir(parents=True)
    tracking = "" if digest is None else f"[tracking]\ndigest = {str(digest).lower()}\n"
    (directory / "plugin.md").write_text(f'+++\nname = "{name}"\n[gate]\n{gate}\n{tracking}+++\nDo the thing.\n', encoding="utf-8")
    return directory


def record(town: Path, ledger: Ledger, plugin: str, at: float, duration: float, result: str = "success") -> Bead:
    """One finished run started at ``at``, with a real log file named in ``data["log"]``."""
    run = ledger.claim_run(plugin, "town", now=at)
    log = town / ".gtui" / "runs" / f"{run.ref}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"{plugin} said hello\n", encoding="utf-8")
    data = {"duration_s": duration, "exit_code": EXIT_CODES[result], "log": str(log)}
    if result != "success":
        data["reason"] = f"{plugin} went wrong"
    return ledger.close_run(run.id, result, data=data, now=at + duration)


def at(day: date, hour: int, minute: int = 0) -> float:
    return day_bounds(day)[0] + hour * 3600 + minute * 60


def exists(ledger: Ledger, bead: Bead) -> bool:
    try:
        ledger.get(bead.id)
    except NotFound:
        return False
    return True


def cli(capsys: pytest.CaptureFixture[str], town: Path, *args: str) -> tuple[int, str, str]:
    """``gtui --town TOWN ARGS`` in this process; (exit status, stdout, stderr)."""
    code = main(["--town", str(town), *args])
    out, err = capsys.readouterr()
    return code, out, err


@dataclass
class Scene:
    """A town with three past days of runs, a run still in flight on the middle day, and one run today."""

    town: Path
    ledger: Ledger
    now: float
    days: tuple[date, date, date]  # three, two and one day(s) ago (UTC)
    runs: dict[tuple[str, date], list[Bead]] = field(default_factory=dict)
    today_run: Bead | None = None
    in_flight: Bead | None = None

    def of(self, plugins: tuple[str, ...], day: date) -> list[Bead]:
        return [run for name in plugins for run in self.runs.get((name, day), [])]

    def everything(self) -> list[Bead]:
        assert self.today_run is not None
        return [run for runs in self.runs.values() for run in runs] + [self.today_run]


def build_scene(root: Path, settings: str = "") -> Scene:
    town = make_town(root, settings)
    for name in ("alpha", "bravo", "sleeper"):
        add_plugin(town, name, digest=True)
    add_plugin(town, "chatty", digest=False)
    ledger = open_ledger(Town(town).ledger_path)
    # A scene's now leaves three hours of its UTC day: the tests look a minute and two hours on and mean the same day
    # (run between 22:00 and midnight, two hours on was tomorrow, and today's runs were rightly digested).
    now = min(time.time(), day_bounds(utc_day(time.time()))[1] - 3 * 3600)
    today = utc_day(now)
    scene = Scene(town, ledger, now, (today - timedelta(days=3), today - timedelta(days=2), today - timedelta(days=1)))
    for day in scene.days:
        for plugin, hour, minute, duration, result in DAY_PLAN:
            scene.runs.setdefault((plugin, day), []).append(record(town, ledger, plugin, at(day, hour, minute), duration, result))
    today_start = day_bounds(today)[0]
    scene.today_run = record(town, ledger, "alpha", today_start + (now - today_start) / 2, 0.001)
    scene.in_flight = claim_running(ledger, "sleeper", "town", now=at(scene.days[1], 12))
    return scene


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    return build_scene(tmp_path / "town")


# -- one day into one bead -------------------------------------------------------------------------


def test_a_past_day_is_squashed_into_one_digest_bead_that_keeps_what_mattered(scene: Scene) -> None:
    day = scene.days[1]
    summary_before = scene.ledger.plugin_summary()
    squashed = scene.of(DIGESTED, day)
    kept = [run for run in scene.everything() if run not in squashed]

    result = make_digest(scene.ledger, day, DIGESTED, now=scene.now)

    (bead,) = scene.ledger.beads("digest")
    assert bead.title == f"Plugin Digest {day.isoformat()}" == digest_title(day)
    assert (bead.status, result.digest.id if result.digest else None, result.merged) == ("closed", bead.id, False)
    assert {"type:plugin-digest", f"date:{day.isoformat()}"} <= set(bead.labels)
    assert bead.data["date"] == day.isoformat()
    plugins = bead.data["plugins"]
    assert set(plugins) == {"alpha", "bravo"}  # sleeper's only run of the day is still running

    alpha = plugins["alpha"]
    (alpha_failure,) = [run for run in scene.runs["alpha", day] if run.result == "failure"]
    assert (alpha["runs"], alpha["by_result"]) == (3, {"failure": 1, "success": 2})
    assert (alpha["median_duration_s"], alpha["max_duration_s"]) == (4.0, 9.0)
    assert [(f["run"], f["result"], f["reason"]) for f in alpha["failures"]] == [(alpha_failure.ref, "failure", "alpha went wrong")]
    assert alpha["failures"][0]["at"] == alpha_failure.created_at

    bravo = plugins["bravo"]
    (bravo_timeout,) = [run for run in scene.runs["bravo", day] if run.result == "timeout"]
    assert (bravo["runs"], bravo["by_result"]) == (2, {"success": 1, "timeout": 1})
    assert (bravo["median_duration_s"], bravo["max_duration_s"]) == (15.75, 30.0)
    assert [f["run"] for f in bravo["failures"]] == [bravo_timeout.ref]

    # the totals are the wisps it replaced, no more, no fewer
    assert result.squashed == len(squashed) == 5 == bead.data["runs"] == sum(p["runs"] for p in plugins.values())
    assert sum(sum(p["by_result"].values()) for p in plugins.values()) == len(squashed)
    assert result.to_json()["plugins"]["alpha"] == {k: v for k, v in alpha.items() if k != "durations"}
    assert alpha_failure.ref in bead.body and bravo_timeout.ref in bead.body

    for run in squashed:
        assert not exists(scene.ledger, run), run.ref
        assert not Path(run.data["log"]).exists(), run.data["log"]
    for run in kept:  # other days, the digest = false plugin and today: exactly as they were, logs and all
        assert scene.ledger.get(run.id) == run, run.ref
        assert Path(run.data["log"]).exists(), run.data["log"]
    assert scene.in_flight is not None
    in_flight = scene.ledger.get(scene.in_flight.id)
    assert (in_flight.status, in_flight.result) == ("running", "running")

    # the summary the gates and `plugin list` read is not decremented by squashing
    assert scene.ledger.plugin_summary() == summary_before


def test_digesting_the_same_day_again_changes_nothing(scene: Scene) -> None:
    day = scene.days[1]
    make_digest(scene.ledger, day, DIGESTED, now=scene.now)
    (before,) = scene.ledger.beads("digest")
    wisps = scene.ledger.runs(limit=None)

    again = make_digest(scene.ledger, day, DIGESTED, now=scene.now + 60)

    assert (again.squashed, again.digest, again.plugins) == (0, before, {})  # points at the existing digest
    assert scene.ledger.beads("digest") == [before]  # no new bead, not even a new updated_at
    assert scene.ledger.runs(limit=None) == wisps


def test_a_late_wisp_is_merged_into_its_days_digest(scene: Scene) -> None:
    day = scene.days[1]
    make_digest(scene.ledger, day, DIGESTED, now=scene.now)
    (first,) = scene.ledger.beads("digest")
    late = record(scene.town, scene.ledger, "alpha", at(day, 13), 6.0, "failure")  # recorded afterwards, dated that day

    result = make_digest(scene.ledger, day, DIGESTED, now=scene.now + 60)

    (bead,) = scene.ledger.beads("digest")
    assert (bead.id, result.digest.id if result.digest else None, result.merged, result.squashed) == (first.id, first.id, True, 1)
    alpha = bead.data["plugins"]["alpha"]
    assert (alpha["runs"], alpha["by_result"]) == (4, {"failure": 2, "success": 2})
    assert (alpha["median_duration_s"], alpha["max_duration_s"]) == (5.0, 9.0)  # median of 2, 4, 6, 9: the old durations are kept
    assert [f["run"] for f in alpha["failures"]][-1] == late.ref and len(alpha["failures"]) == 2
    assert bead.data["plugins"]["bravo"] == first.data["plugins"]["bravo"]
    assert bead.data["runs"] == first.data["runs"] + 1 == 6
    assert not exists(scene.ledger, late) and not Path(late.data["log"]).exists()
    assert late.ref in bead.body


def test_a_run_still_in_flight_survives_its_days_digest_and_joins_it_when_it_ends(scene: Scene) -> None:
    day = scene.days[1]
    assert scene.in_flight is not None
    make_digest(scene.ledger, day, DIGESTED, now=scene.now)
    survivor = scene.ledger.get(scene.in_flight.id)
    assert (survivor.status, survivor.result) == ("running", "running")
    assert "sleeper" not in scene.ledger.beads("digest")[0].data["plugins"]
    assert undigested_days(scene.ledger, ["sleeper"], scene.now) == []  # a running run is nothing to digest yet

    scene.ledger.close_run(scene.in_flight.id, "abandoned", data={"reason": "owner died"}, now=scene.now)
    assert undigested_days(scene.ledger, ["sleeper"], scene.now) == [day]
    result = make_digest(scene.ledger, day, DIGESTED, now=scene.now)

    assert (result.merged, result.squashed) == (True, 1)
    (bead,) = scene.ledger.beads("digest")
    sleeper = bead.data["plugins"]["sleeper"]
    assert (sleeper["runs"], sleeper["by_result"], sleeper["median_duration_s"]) == (1, {"abandoned": 1}, None)
    assert [f["run"] for f in sleeper["failures"]] == [scene.in_flight.ref]


def test_today_and_future_days_are_refused_and_todays_runs_never_touched(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    today = utc_day(scene.now)
    for day in (today, today + timedelta(days=1), today + timedelta(days=400)):
        with pytest.raises(GtError, match=f"{day.isoformat()} is not over yet"):
            make_digest(scene.ledger, day, DIGESTED, now=scene.now)
    code, out, err = cli(capsys, scene.town, "plugin", "digest", "--date", today.isoformat(), "--json")
    assert code == 2
    assert "not over yet" in json.loads(out)["error"]
    assert err.startswith("gtui: error: ") and err.count("\n") == 1
    assert scene.ledger.beads("digest") == []
    assert scene.today_run is not None and scene.ledger.get(scene.today_run.id) == scene.today_run
    assert undigested_days(scene.ledger, DIGESTED, scene.now) == list(scene.days)  # today is never a candidate


def test_a_dry_run_reports_the_digest_and_changes_nothing(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    day = scene.days[0]
    wisps = scene.ledger.runs(limit=None)

    dry = make_digest(scene.ledger, day, DIGESTED, now=scene.now, dry_run=True)
    code, out, _ = cli(capsys, scene.town, "plugin", "digest", "--date", day.isoformat(), "--dry-run", "--json")

    assert (dry.dry_run, dry.digest, dry.squashed) == (True, None, 5)
    assert code == 0
    shown = json.loads(out)
    assert (shown["dry_run"], shown["id"], shown["squashed"], shown["date"]) == (True, None, 5, day.isoformat())
    assert scene.ledger.beads("digest") == []
    assert scene.ledger.runs(limit=None) == wisps
    assert all(Path(run.data["log"]).exists() for run in scene.everything())

    real = make_digest(scene.ledger, day, DIGESTED, now=scene.now)
    assert real.to_json()["plugins"] == dry.to_json()["plugins"] == shown["plugins"]  # the dry run told the truth


def test_a_cooldown_gate_stays_closed_after_its_last_run_was_squashed(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "cool", digest=True, gate='type = "cooldown"\nduration = "48h"')
    ledger = open_ledger(Town(town).ledger_path)
    now = time.time()
    yesterday = utc_day(now) - timedelta(days=1)
    last = record(town, ledger, "cool", at(yesterday, 20), 3.0)
    plugin = discover(Town(town)).get("cool")
    assert plugin is not None

    def decision() -> GateDecision:
        summary, running, paused, events = gate_facts(ledger)
        stats = summary.get("cool")
        facts = GateFacts(stats.last_started_at if stats else None, running.get("cool"), paused.get("cool"),
                          stats.last_run_id if stats else None)
        return evaluate(plugin, facts, events, now)

    before = decision()
    make_digest(ledger, yesterday, ["cool"], now=now)

    assert ledger.runs("cool") == []  # its last run is only in the digest now...
    after = decision()
    assert after == before  # ...and the gate still knows when it ran
    assert not after.open and after.next_open_at == last.created_at + 48 * 3600
    assert ledger.plugin_summary()["cool"].last_run_id == last.id


# -- the command line --------------------------------------------------------------------------------


def test_plugin_history_shows_the_digested_day(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    day = scene.days[1]
    result = make_digest(scene.ledger, day, DIGESTED, now=scene.now)
    assert result.digest is not None

    code, out, _ = cli(capsys, scene.town, "plugin", "history", "alpha", "--json")

    assert code == 0
    shown = json.loads(out)
    (entry,) = shown["digests"]
    assert (entry["id"], entry["date"], entry["title"]) == (result.digest.ref, day.isoformat(), digest_title(day))
    assert (entry["runs"], entry["by_result"]) == (3, {"failure": 1, "success": 2})
    assert (entry["median_duration_s"], entry["max_duration_s"]) == (4.0, 9.0)
    assert len(entry["failures"]) == 1 and "durations" not in entry
    alive = {run.ref for run in scene.everything() if run.plugin == "alpha" and utc_day(run.created_at) != day}
    assert {run["id"] for run in shown["runs"]} == alive

    code, out, _ = cli(capsys, scene.town, "plugin", "history", "chatty", "--json")
    assert (code, json.loads(out)["digests"]) == (0, [])

    code, out, _ = cli(capsys, scene.town, "plugin", "history", "alpha")  # for people: a table of digested days
    assert code == 0 and day.isoformat() in out and result.digest.ref in out


def test_plugin_history_lists_digested_days_newest_first_and_limits_after_choosing_the_plugins(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    first, middle, last = scene.days
    record(scene.town, scene.ledger, "rare", at(first, 6), 1.0)  # a plugin that ran on the oldest day only
    for day in (last, first, middle):  # digested out of order
        make_digest(scene.ledger, day, (*DIGESTED, "rare"), now=scene.now)

    code, out, _ = cli(capsys, scene.town, "plugin", "history", "alpha", "--json")
    assert code == 0
    assert [entry["date"] for entry in json.loads(out)["digests"]] == [last.isoformat(), middle.isoformat(), first.isoformat()]

    code, out, _ = cli(capsys, scene.town, "plugin", "history", "rare", "--limit", "1", "--json")
    assert code == 0
    assert [entry["date"] for entry in json.loads(out)["digests"]] == [first.isoformat()]

    assert [entry["date"] for entry in digests(scene.ledger, limit=2)] == [last.isoformat(), middle.isoformat()]
    for not_a_plugin in ("success", "runs", "date", "plugins", "failure"):  # keys inside every digest, but no plugin's
        assert digests(scene.ledger, not_a_plugin) == [], not_a_plugin


def test_plugin_digest_by_date_and_yesterday(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    first, _, yesterday = scene.days
    assert yesterday == utc_day(time.time()) - timedelta(days=1)

    code, out, _ = cli(capsys, scene.town, "plugin", "digest", "--date", first.isoformat(), "--json")
    assert code == 0
    shown = json.loads(out)
    assert set(shown) == {"date", "title", "id", "squashed", "merged", "dry_run", "plugins"}
    (bead,) = scene.ledger.beads("digest")
    assert (shown["date"], shown["title"], shown["id"], shown["squashed"]) == (first.isoformat(), digest_title(first), bead.ref, 5)
    assert (shown["merged"], shown["dry_run"]) == (False, False)
    assert shown["plugins"]["alpha"]["by_result"] == {"failure": 1, "success": 2}

    code, out, _ = cli(capsys, scene.town, "plugin", "digest", "--yesterday", "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["date"], shown["squashed"]) == (yesterday.isoformat(), 5)
    assert not any(exists(scene.ledger, run) for run in scene.of(DIGESTED, yesterday))

    code, out, _ = cli(capsys, scene.town, "plugin", "digest", "--json")  # the default is yesterday: done already
    assert code == 0 and (json.loads(out)["date"], json.loads(out)["squashed"]) == (yesterday.isoformat(), 0)
    assert len(scene.ledger.beads("digest")) == 2

    code, out, _ = cli(capsys, scene.town, "plugin", "digest", "--date", scene.days[1].isoformat())  # for people
    assert code == 0 and f"{digest_title(scene.days[1])}: squashed 5 run(s)" in out

    code, out, err = cli(capsys, scene.town, "plugin", "digest", "--date", "yesterday", "--json")
    assert code == 2 and "expected a date" in json.loads(out)["error"] and "Traceback" not in err


# -- the patrol does it by itself --------------------------------------------------------------------


def test_the_patrol_digests_every_past_day_once(tmp_path: Path) -> None:
    scene = build_scene(tmp_path / "town", settings="retention_days = 0\n")

    engine = Engine(Town(scene.town))
    try:
        report = engine.patrol_once(now=scene.now)
    finally:
        engine.close()

    assert report.digests == [digest_title(day) for day in scene.days]
    beads = scene.ledger.beads("digest")
    assert sorted(bead.title for bead in beads) == [digest_title(day) for day in scene.days]
    assert sum(bead.data["runs"] for bead in beads) == 15
    for day in scene.days:
        assert not any(exists(scene.ledger, run) for run in scene.of(DIGESTED, day))
        assert all(scene.ledger.get(run.id) == run for run in scene.of(("chatty",), day))
    assert scene.today_run is not None and scene.ledger.get(scene.today_run.id) == scene.today_run
    assert scene.in_flight is not None and scene.ledger.get(scene.in_flight.id).status == "running"

    for later in (scene.now + 60, scene.now + 2 * 3600):  # the same patrol an hour on, and a fresh process
        again = Engine(Town(scene.town))
        try:
            assert again.patrol_once(now=later).digests == []
        finally:
            again.close()
    assert len(scene.ledger.beads("digest")) == 3


# -- retention -----------------------------------------------------------------------------------------


@dataclass
class Aged:
    town: Path
    ledger: Ledger
    now: float
    fresh: Bead  # keeper, 1 day old
    old: list[Bead]  # finished runs of non-digest plugins past retention
    in_flight: Bead  # keeper, claimed 5 days ago, still running
    digested_plugin_run: Bead  # squashy (digest = true), 10 days old
    durable: list[Bead]


def build_aged(root: Path, settings: str) -> Aged:
    town = make_town(root, settings)
    add_plugin(town, "keeper", digest=False)
    add_plugin(town, "quiet", digest=None)  # no [tracking] at all: not a digest plugin either
    add_plugin(town, "squashy", digest=True)
    ledger = open_ledger(Town(town).ledger_path)
    now = time.time()
    fresh = record(town, ledger, "keeper", now - 1 * DAY, 2.0)
    old = [
        record(town, ledger, "keeper", now - 3 * DAY, 2.0, "failure"),
        record(town, ledger, "keeper", now - 10 * DAY, 2.0),
        record(town, ledger, "quiet", now - 2 * DAY - 60, 1.0, "timeout"),
        record(town, ledger, "vanished", now - 40 * DAY, 1.0),  # its plugin.md is gone: nobody keeps it
    ]
    in_flight = claim_running(ledger, "keeper", "town", now=now - 5 * DAY)
    squashy = record(town, ledger, "squashy", now - 10 * DAY, 1.0)
    escalation, _ = Escalations(Town(town), ledger).raise_("disk nearly full", "medium", now=now - 30 * DAY)
    durable = [
        ledger.get(escalation.id),
        *ledger.beads("mail"),  # the escalation's mail to the mayor
        ledger.emit_event("deploy", now=now - 30 * DAY),
        ledger.create("digest", title="Plugin Digest 2000-01-01", status="closed", now=now - 30 * DAY),
    ]
    assert {bead.kind for bead in durable} == {"escalation", "mail", "event", "digest"}
    return Aged(town, ledger, now, fresh, old, in_flight, squashy, durable)


def test_retention_prunes_old_finished_runs_of_non_digest_plugins_and_their_logs(tmp_path: Path) -> None:
    aged = build_aged(tmp_path / "town", "retention_days = 2\n")
    assert load_settings(aged.town / "settings").retention_days == 2
    summary = aged.ledger.plugin_summary()

    assert prune(aged.ledger, ["squashy"], 2, now=aged.now) == len(aged.old)

    for run in aged.old:
        assert not exists(aged.ledger, run), run.ref
        assert not Path(run.data["log"]).exists()
    assert aged.ledger.get(aged.fresh.id) == aged.fresh and Path(aged.fresh.data["log"]).exists()
    assert aged.ledger.get(aged.in_flight.id).status == "running"  # never, however old
    assert aged.ledger.get(aged.digested_plugin_run.id) == aged.digested_plugin_run  # digests take care of those
    for bead in aged.durable:
        assert exists(aged.ledger, bead), bead.ref
    assert aged.ledger.plugin_summary() == summary
    assert prune(aged.ledger, ["squashy"], 2, now=aged.now) == 0


def test_retention_without_any_digest_plugin_still_prunes(tmp_path: Path) -> None:
    aged = build_aged(tmp_path / "town", "retention_days = 2\n")

    pruned = prune(aged.ledger, [], 2, now=aged.now)

    assert pruned == len(aged.old) + 1  # squashy counts as an ordinary plugin here
    assert not exists(aged.ledger, aged.digested_plugin_run)
    assert exists(aged.ledger, aged.fresh) and exists(aged.ledger, aged.in_flight)
    assert all(exists(aged.ledger, bead) for bead in aged.durable)


def test_retention_days_zero_keeps_everything(tmp_path: Path) -> None:
    aged = build_aged(tmp_path / "town", "retention_days = 0\n")
    everything = aged.ledger.runs(limit=None)

    assert prune(aged.ledger, ["squashy"], 0, now=aged.now) == 0

    engine = Engine(Town(aged.town))
    try:
        report = engine.patrol_once(now=aged.now)
    finally:
        engine.close()
    assert report.pruned == 0
    assert report.digests == [digest_title(utc_day(aged.digested_plugin_run.created_at))]
    assert aged.ledger.runs(limit=None) == [run for run in everything if run.id != aged.digested_plugin_run.id]
    assert all(Path(run.data["log"]).exists() for run in [aged.fresh, *aged.old])


def test_the_patrol_prunes_by_the_town_settings(tmp_path: Path) -> None:
    aged = build_aged(tmp_path / "town", "retention_days = 2\n")

    engine = Engine(Town(aged.town))
    try:
        report = engine.patrol_once(now=aged.now)
    finally:
        engine.close()

    assert report.pruned == len(aged.old)
    assert report.digests == [digest_title(utc_day(aged.digested_plugin_run.created_at))]
    remaining = {run.id for run in aged.ledger.runs(limit=None)}
    assert remaining == {aged.fresh.id, aged.in_flight.id}
    assert not any(Path(run.data["log"]).exists() for run in aged.old)
    assert all(exists(aged.ledger, bead) for bead in aged.durable)


def test_while_a_plugin_file_is_broken_the_patrol_prunes_only_runs_of_known_plugins(tmp_path: Path) -> None:
    aged = build_aged(tmp_path / "town", "retention_days = 2\n")
    broken = aged.town / "plugins" / "vanished"
    broken.mkdir(parents=True)
    (broken / "plugin.md").write_text("+++\nname = \"vanished\"\n[gate]\ntype = \"cooldown\"\nduration = \"5 minutes\"\n+++\n")
    vanished = next(run for run in aged.old if run.plugin == "vanished")

    engine = Engine(Town(aged.town))
    try:
        report = engine.patrol_once(now=aged.now)
    finally:
        engine.close()

    assert [bad.path for bad in report.invalid] == [broken / "plugin.md"]
    assert report.pruned == len(aged.old) - 1
    assert exists(aged.ledger, vanished)  # it may be a digest plugin whose file is being edited: kept for now


def test_prune_works_in_batches_until_nothing_old_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aged = build_aged(tmp_path / "town", "retention_days = 2\n")
    monkeypatch.setattr("gtcore.digest.PRUNE_BATCH", 2)

    assert prune(aged.ledger, ["squashy"], 2, now=aged.now) == len(aged.old) == 4
    assert {run.id for run in aged.ledger.runs(limit=None)} == {aged.fresh.id, aged.in_flight.id, aged.digested_plugin_run.id}
