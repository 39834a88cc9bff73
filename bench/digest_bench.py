"""Digest benchmark: squashing a day of 100,000 run wisps, and the plugin summary after a year of digests.

    .venv/bin/python bench/digest_bench.py                          # 100,000 wisps/day; 365 days x 2,000 wisps
    .venv/bin/python bench/digest_bench.py --year-days 90 --per-day 500 --profile
    .venv/bin/python bench/digest_bench.py --quick                  # 10,000 wisps; 30 days x 200

Ledgers are built fresh in a temp directory with bulk INSERTs straight into the schema ``Ledger``
creates (beads and their four labels, exactly as ``claim_run`` + ``close_run`` leave them), so the
ledger's own triggers maintain ``plugin_stats`` as for real runs.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from benchkit import describe, in_process, parse_quick, timed

from gtcore.digest import DAY, day_bounds, digests, make_digest, undigested_days, utc_day
from gtcore.storage import open_ledger

DIGEST_TARGET_S = 2.0
RATIO_TARGET = 1.5
RESULT_WEIGHTS = {"success": 85, "failure": 8, "timeout": 3, "skipped": 3, "abandoned": 1}
EXIT_CODES = {"success": 0, "failure": 1, "timeout": -15, "skipped": None, "abandoned": None}
RIGS = ("town", "alpha", "beta", "gamma", "delta")
IN_FLIGHT = 5  # runs still running on the digested day: they must survive it


# -- building ledgers -----------------------------------------------------------------------------


def plugin_names(count: int) -> list[str]:
    return [f"plugin-{n:03d}" for n in range(count)]


def build(path: Path, days: list[tuple[date, int]], plugins: int, *, log_dir: Path | None = None, in_flight_on: date | None = None,
          seed: int = 7) -> int:
    """Fill a new Ledger at ``path``: ``count`` finished runs on each ``(day, count)``; returns how many wisps.

    With ``log_dir`` every run names a log file there (created separately, see :func:`make_logs`).
    ``in_flight_on`` adds IN_FLIGHT running wisps on that day.
    """
    open_ledger(path).close()  # the real schema, migrations and triggers
    rng = random.Random(seed)
    names = plugin_names(plugins)
    results, weights = list(RESULT_WEIGHTS), list(RESULT_WEIGHTS.values())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-500000")
    bead_id = 0
    beads: list[tuple] = []
    labels: list[tuple[int, str]] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO beads (id, kind, title, status, body, created_at, updated_at, closed_at, plugin, rig, result, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", beads)
        conn.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?)", labels)  # the wisp triggers add most of them
        conn.execute("COMMIT")
        beads.clear()
        labels.clear()

    def add(plugin: str, created: float, status: str, result: str, duration: float | None) -> None:
        nonlocal bead_id
        bead_id += 1
        rig = RIGS[int(plugin[-3:]) % len(RIGS)]
        closed = None if duration is None else created + duration
        data = "{}" if duration is None else (
            f'{{"duration_s": {duration:.3f}, "exit_code": {_json(EXIT_CODES[result])}, "dog": "dog-{bead_id % 4}"'
            + (f', "log": "{log_dir}/run-{bead_id}.log"' if log_dir else "") + "}")
        beads.append((bead_id, "wisp", f"run {plugin}", status, "", created, closed or created, closed, plugin, rig, result, data))
        labels.extend([(bead_id, "type:plugin-run"), (bead_id, f"plugin:{plugin}"), (bead_id, f"rig:{rig}"), (bead_id, f"result:{result}")])
        if len(beads) >= 50_000:
            flush()

    for day, count in sorted(days):
        start = day_bounds(day)[0]
        for created in sorted(start + rng.random() * (DAY - 1) for _ in range(count)):
            add(rng.choice(names), created, "closed", rng.choices(results, weights)[0], round(rng.uniform(0.2, 300.0), 3))
        if day == in_flight_on:
            for plugin in names[:IN_FLIGHT]:
                add(plugin, start + DAY - 60, "running", "running", None)
    if beads:
        flush()
    runs = conn.execute("SELECT SUM(run_count) FROM plugin_stats").fetchone()[0]
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    assert runs == bead_id, (runs, bead_id)
    return bead_id


def _json(value: int | None) -> str:
    return "null" if value is None else str(value)


def make_logs(log_dir: Path, first: int, last: int) -> None:
    """The run log files of wisps ``first..last`` (a line each, as a short run leaves)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for bead_id in range(first, last + 1):
        with open(log_dir / f"run-{bead_id}.log", "w") as handle:
            handle.write("ok\n")


# -- measuring --------------------------------------------------------------------------------------


def floor_sql(path: Path, start: float, end: float) -> float:
    """Seconds of the bare SQL any squash needs: read the day's finished wisps, delete them and their labels."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    began = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    where = "kind = 'wisp' AND status = 'closed' AND created_at >= ? AND created_at < ?"
    rows = conn.execute(f"SELECT id, plugin, result, data FROM beads WHERE {where}", (start, end)).fetchall()
    conn.execute(f"DELETE FROM labels WHERE bead_id IN (SELECT id FROM beads WHERE {where})", (start, end))
    conn.execute(f"DELETE FROM beads WHERE {where}", (start, end))
    conn.execute("COMMIT")
    spent = time.perf_counter() - began
    conn.close()
    assert rows
    return spent


def floor_unlink(log_dir: Path) -> float:
    began = time.perf_counter()
    for entry in os.scandir(log_dir):
        os.unlink(entry.path)
    return time.perf_counter() - began


def profile_digest(path: Path, day: date, names: list[str], now: float, top: int = 14) -> None:
    ledger = open_ledger(path)
    profiler = cProfile.Profile()
    profiler.enable()
    make_digest(ledger, day, names, now=now)
    profiler.disable()
    ledger.close()
    for key in ("tottime", "cumulative"):
        print(f"  top {top} by {key}:")
        stream = pstats.Stats(profiler).sort_stats(key)
        stream.stream = sys.stdout
        stream.print_stats(top)


# -- the two benchmarks --------------------------------------------------------------------------------


def bench_big_day(work: Path, wisps: int, plugins: int, repeat: int, profile: bool) -> bool:
    now = day_bounds(utc_day(time.time()))[0] + 12 * 3600
    day = utc_day(now) - timedelta(days=1)
    neighbours = max(wisps // 5, 1)
    template = work / "big-day" / "template.db"
    template.parent.mkdir(parents=True)
    log_dir = work / "big-day" / "logs"
    started = time.perf_counter()
    total = build(template, [(day - timedelta(days=1), neighbours), (day, wisps), (day + timedelta(days=1), neighbours)],
                  plugins, log_dir=log_dir, in_flight_on=day)
    first_id = neighbours + 1
    print(f"ledger: {total:,} wisps ({wisps:,} on {day}, {neighbours:,} on each neighbouring day, {IN_FLIGHT} of {day} still running),"
          f" {plugins} plugins, {4 * total:,} labels; built in {time.perf_counter() - started:.1f} s")
    names = plugin_names(plugins)
    start, end = day_bounds(day)

    seconds, sql_floor, unlink_floor = [], [], []
    for attempt in range(repeat):
        db = work / "big-day" / f"run-{attempt}.db"
        shutil.copyfile(template, db)
        make_logs(log_dir, first_id, first_id + wisps - 1)
        ledger = open_ledger(db)
        summary = ledger.plugin_summary()
        began = time.perf_counter()
        result = make_digest(ledger, day, names, now=now)
        seconds.append(time.perf_counter() - began)
        ok = (result.squashed == wisps and result.digest is not None and result.digest.data["runs"] == wisps
              and ledger.plugin_summary() == summary and len(ledger.runs_in_flight()) == IN_FLIGHT
              and len(ledger.runs(limit=None)) == total - wisps and not any(log_dir.iterdir()))
        if not ok:
            print(f"  WRONG: attempt {attempt} squashed {result.squashed:,}; the ledger or the logs are not as expected")
            return False
        ledger.close()
        db.unlink()
        # the floors, on a fresh copy with fresh logs
        shutil.copyfile(template, db)
        sql_floor.append(floor_sql(db, start, end))
        make_logs(log_dir, first_id, first_id + wisps - 1)
        unlink_floor.append(floor_unlink(log_dir))
        db.unlink()
    median = statistics.median(seconds)
    passed = median < DIGEST_TARGET_S
    print(f"digest of one day, {wisps:,} wisps ({repeat} runs, each on a fresh copy with {wisps:,} real log files)")
    verdict = f"target < {DIGEST_TARGET_S:g} s: {'PASS' if passed else 'FAIL'}"
    print(f"  make_digest(), logs included        {describe(seconds, 's')}   {verdict}")
    print(f"  baseline: bare SQL select + delete  {describe(sql_floor, 's')}   (one transaction, no digest)")
    print(f"  baseline: unlink the log files      {describe(unlink_floor, 's')}")
    floor = statistics.median(sql_floor) + statistics.median(unlink_floor)
    print(f"  digest / (SQL + unlink floors)      {median / floor:.2f}x")
    if profile or not passed:
        db = work / "big-day" / "profile.db"
        shutil.copyfile(template, db)
        make_logs(log_dir, first_id, first_id + wisps - 1)
        profile_digest(db, day, names, now)
    return passed


def bench_year(work: Path, days: int, per_day: int, plugins: int, repeat: int) -> bool:
    now = day_bounds(utc_day(time.time()))[0] + 12 * 3600
    today = utc_day(now)
    year = [today - timedelta(days=n) for n in range(days, 0, -1)]
    path = work / "year" / "ledger.db"
    path.parent.mkdir(parents=True)
    started = time.perf_counter()
    total = build(path, [(day, per_day) for day in year], plugins, seed=11)
    print(f"ledger: {total:,} wisps over {days} days ({per_day:,}/day), {plugins} plugins; built in {time.perf_counter() - started:.1f} s")
    ledger = open_ledger(path)
    names = plugin_names(plugins)
    ledger.plugin_summary()
    before_summary = ledger.plugin_summary()
    before = timed(ledger.plugin_summary, repeat)
    history_before = timed(lambda: digests(ledger, names[0], limit=20), repeat)

    per_day_ms = []
    started = time.perf_counter()
    pending = undigested_days(ledger, names, now)
    for day in pending:
        began = time.perf_counter()
        make_digest(ledger, day, names, now=now)
        per_day_ms.append((time.perf_counter() - began) * 1000)
    squashing = time.perf_counter() - started
    ledger.close()

    ledger = open_ledger(path)  # a new process's view, as the next `gtui --once` has it
    ledger.plugin_summary()
    after = timed(ledger.plugin_summary, repeat)
    history_after = timed(lambda: digests(ledger, names[0], limit=20), repeat)
    same = ledger.plugin_summary() == before_summary
    ledger.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # what is left in the file, whatever the Ledger's API offers
        digest_beads, wisps_left = (conn.execute("SELECT COUNT(*) FROM beads WHERE kind = ?", (kind,)).fetchone()[0]
                                    for kind in ("digest", "wisp"))
    ratio = statistics.median(after) / statistics.median(before)
    passed = ratio <= RATIO_TARGET and same and digest_beads == days and wisps_left == 0 and len(pending) == days
    print(f"  squashed day by day: {len(pending)} make_digest() calls in {squashing:.1f} s, per day {describe(per_day_ms)}")
    print(f"  now {digest_beads} digest beads and {wisps_left} wisps; the summary is unchanged: {'yes' if same else 'NO'}")
    print(f"  Ledger.plugin_summary(), before     {describe(before)}   (baseline, same ledger before squashing)")
    print(f"  Ledger.plugin_summary(), after      {describe(after)}")
    print(f"  after / before                      {ratio:.2f}x   target <= {RATIO_TARGET:g}x: {'PASS' if passed else 'FAIL'}")
    print(f"  history digests (1 plugin, 20 days) {describe(history_after)}"
          f"   (before squashing: {statistics.median(history_before):.3f} ms, no digests yet)")
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wisps", type=int, default=100_000, help="wisps on the digested day [100,000]")
    parser.add_argument("--plugins", type=int, default=200, help="plugins they belong to [200]")
    parser.add_argument("--repeat", type=int, default=3, help="timed digests of the big day, each on a fresh copy [3]")
    parser.add_argument("--year-days", type=int, default=365, help="days of digests for the summary benchmark [365]")
    parser.add_argument("--per-day", type=int, default=2_000, help="wisps per day in that year [2,000]")
    parser.add_argument("--summary-repeat", type=int, default=50, help="timed calls of plugin_summary() [50]")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile costs of one big digest (automatic over target)")
    args = parse_quick(parser, argv, {"wisps": 10_000, "repeat": 1, "year_days": 30, "per_day": 200, "summary_repeat": 10})
    if args.plugins < IN_FLIGHT or args.plugins > 999 or args.wisps < 1 or args.year_days < 1 or args.per_day < 1:
        parser.error(f"need {IN_FLIGHT}-999 plugins and at least one wisp and one day")

    print(f"gtui digest bench: python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs; {in_process()}")
    with tempfile.TemporaryDirectory(prefix="gtui-digest-bench-") as tmp:
        work = Path(tmp)
        print()
        big_day = bench_big_day(work, args.wisps, args.plugins, args.repeat, args.profile)
        print()
        year = bench_year(work, args.year_days, args.per_day, args.plugins, args.summary_repeat)
    print()
    passed = big_day and year
    print(f"overall: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
