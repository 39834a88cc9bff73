"""Ledger benchmark: the all-plugin summary and the cost of recording a run on a big ledger.

    .venv/bin/python bench/ledger_bench.py                       # 1,000 plugins, 1,000,000 run wisps
    .venv/bin/python bench/ledger_bench.py --wisps 100000 --plugins 200
    .venv/bin/python bench/ledger_bench.py --quick               # the same, fewer repeats

The big ledger is built once with bulk INSERTs straight into the Ledger's own schema (its
triggers maintain ``plugin_stats`` exactly as for real runs) and cached under the temp
directory, keyed by size, so reruns start measuring at once.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchkit import describe, in_process, parse_quick, timed

from gtcore.model import PluginStats
from gtcore.storage import open_ledger
from gtcore.storage.contract import Ledger
from gtcore.storage.sqlite import SCHEMA_VERSION

SUMMARY_TARGET_MS = 50.0
RECORD_TARGET_MS = 2.0
BUILD_FORMAT = 2  # bump when the generated data changes, so stale caches are not reused
RESULT_WEIGHTS = {"success": 85, "failure": 8, "timeout": 3, "skipped": 3, "abandoned": 1}
RIGS = ("town", "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota")
BENCH_PLUGIN = "zz-bench-record"


# -- building the big ledger -------------------------------------------------------------------


def plugin_names(count: int) -> list[str]:
    return [f"plugin-{n:04d}" for n in range(count)]


def cache_path(wisps: int, plugins: int, cache_dir: Path) -> Path:
    return cache_dir / f"ledger-{wisps}w-{plugins}p-s{SCHEMA_VERSION}-f{BUILD_FORMAT}" / "ledger.db"


def generate(wisps: int, plugins: int, seed: int = 42) -> Iterator[tuple]:
    """Yield bead rows in id order, as claim_run + close_run would leave them (the schema's triggers add the labels).

    Start times increase strictly over the last 30 days.  One plugin in twenty ends with a run
    still in flight (status running), the others' runs are all closed.
    """
    rng = random.Random(seed)
    names = plugin_names(plugins)
    rig_of = {name: RIGS[n % len(RIGS)] for n, name in enumerate(names)}
    results, weights = list(RESULT_WEIGHTS), list(RESULT_WEIGHTS.values())
    in_flight = names[::20]
    closed = wisps - len(in_flight)
    start = time.time() - 30 * 86400
    step = 30 * 86400 / max(wisps, 1)
    for n in range(wisps):
        bead_id = n + 1
        created = start + n * step + rng.random() * step * 0.5
        if n < closed:
            plugin = names[n] if n < plugins else names[rng.randrange(plugins)]  # every plugin has run
            result, status = rng.choices(results, weights)[0], "closed"
            closed_at = created + rng.uniform(0.5, 120.0)
        else:
            plugin, result, status, closed_at = in_flight[n - closed], "running", "running", None
        rig = rig_of[plugin]
        row = ("wisp", f"run {plugin}", status, "", created, closed_at or created, closed_at, plugin, rig, result, "{}")
        yield (bead_id, *row)


def build(path: Path, wisps: int, plugins: int) -> float:
    """Build the ledger at ``path`` (atomically: in a side directory, renamed when complete)."""
    started = time.perf_counter()
    work = path.parent.with_name(f"{path.parent.name}.building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    db = work / "ledger.db"
    open_ledger(db).close()  # the real schema, migrations and all
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    conn.execute("PRAGMA temp_store=MEMORY")
    batch = 100_000
    beads: list[tuple] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO beads (id, kind, title, status, body, created_at, updated_at, closed_at, plugin, rig, result, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            beads,
        )
        conn.execute("COMMIT")
        beads.clear()

    for row in generate(wisps, plugins):
        beads.append(row)
        if len(beads) >= batch:
            flush()
            print(f"  built {row[0]:,} / {wisps:,} wisps ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    if beads:
        flush()
    conn.execute("PRAGMA journal_mode=WAL")
    total, runs = conn.execute("SELECT COUNT(*), SUM(run_count) FROM plugin_stats").fetchone()
    conn.close()
    assert (total, runs) == (min(plugins, wisps), wisps), (total, runs)
    if path.parent.exists():
        shutil.rmtree(path.parent)
    work.rename(path.parent)
    return time.perf_counter() - started


# -- measuring -------------------------------------------------------------------------------


GROUP_BY_SQL = """
SELECT plugin, COUNT(*), SUM(result IN ('failure', 'timeout')), id, MAX(created_at), result
FROM beads WHERE kind = 'wisp' GROUP BY plugin
"""


def group_by_summary(conn: sqlite3.Connection) -> dict[str, tuple[int, int, int, str]]:
    """The fair baseline: the same summary in one GROUP BY over every run wisp (no table kept up to date).

    SQLite takes the bare columns id / result from the row holding MAX(created_at): the last run.
    """
    rows = conn.execute(GROUP_BY_SQL)
    return {plugin: (count, failures, last_id, last_result) for plugin, count, failures, last_id, _, last_result in rows}


def same_summary(summary: dict[str, PluginStats], grouped: dict[str, tuple[int, int, int, str]]) -> bool:
    kept = {name: (stats.run_count, stats.failure_count, stats.last_run_id, stats.last_result) for name, stats in summary.items()}
    return grouped == kept


NAIVE_SQL = """
SELECT COUNT(*), COALESCE(SUM(b.result IN ('failure', 'timeout')), 0), MAX(b.created_at), b.id, b.result
FROM labels AS l CROSS JOIN beads AS b ON b.id = l.bead_id
WHERE l.label = ? AND b.kind = 'wisp'
  AND EXISTS (SELECT 1 FROM labels AS t WHERE t.bead_id = b.id AND t.label = 'type:plugin-run')
"""


def naive_summary(conn: sqlite3.Connection, names: list[str]) -> dict[str, tuple[int, int, int, str]]:
    """The Gas Town way: one labelled query per plugin (``plugin:<name>`` + ``type:plugin-run``).

    SQLite returns the bare columns b.id / b.result from the row holding MAX(created_at), so
    each query yields the run count, failure count and the last run in one go.
    """
    out = {}
    for name in names:
        count, failures, _last_at, last_id, last_result = conn.execute(NAIVE_SQL, (f"plugin:{name}",)).fetchone()
        if count:
            out[name] = (count, failures, last_id, last_result)  # what group_by_summary keeps, to be held to the summary alike
    return out


def record_runs(ledger: Ledger, count: int) -> tuple[list[float], list[float]]:
    """(claim+close pair, claim alone) in ms, for ``count`` runs of one plugin."""
    pairs, claims = [], []
    for _ in range(5):  # warm the connection and the statement cache
        ledger.close_run(ledger.claim_run(BENCH_PLUGIN, "town").id, "success")
    for n in range(count):
        start = time.perf_counter()
        run = ledger.claim_run(BENCH_PLUGIN, "town", labels=["bench:record"])
        claimed = time.perf_counter()
        ledger.close_run(run.id, "failure" if n % 10 == 0 else "success")
        done = time.perf_counter()
        pairs.append((done - start) * 1000)
        claims.append((claimed - start) * 1000)
    return pairs, claims


def forget_bench_runs(path: Path) -> None:
    """Remove the runs this benchmark recorded, so the cached ledger stays as built (straight in the file: no Ledger call deletes runs)."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM labels WHERE bead_id IN (SELECT id FROM beads WHERE kind = 'wisp' AND plugin = ?)", (BENCH_PLUGIN,))
        conn.execute("DELETE FROM beads WHERE kind = 'wisp' AND plugin = ?", (BENCH_PLUGIN,))
        conn.execute("DELETE FROM plugin_stats WHERE plugin = ?", (BENCH_PLUGIN,))


def verdict(value: float, target: float) -> str:
    return f"target < {target:g} ms: {'PASS' if value < target else 'FAIL'}"


def ensure(wisps: int, plugins: int, cache_dir: Path, rebuild: bool) -> tuple[Path, str]:
    path = cache_path(wisps, plugins, cache_dir)
    if rebuild or not path.exists():
        print(f"building {path} ...", file=sys.stderr, flush=True)
        return path, f"built in {build(path, wisps, plugins):.1f} s"
    return path, "reused from cache"


def measure_size(path: Path, args: argparse.Namespace, first: bool) -> tuple[bool, list[str]]:
    """One ledger size: the summary beside one GROUP BY (and, for the first size, the naive per-plugin queries), then recording."""
    start = time.perf_counter()
    ledger = open_ledger(path)
    summary = ledger.plugin_summary()
    cold = (time.perf_counter() - start) * 1000
    hot = timed(ledger.plugin_summary, args.repeat)
    conn = sqlite3.connect(path)
    grouped = group_by_summary(conn)  # warm-up pass, also the correctness check
    group_times = timed(lambda: group_by_summary(conn), args.naive_repeat)
    lines = []
    summary_ms, group_ms = statistics.median(hot), statistics.median(group_times)
    agrees = same_summary(summary, grouped)
    lines.append(f"  Ledger.plugin_summary()            {describe(hot)}   -> {len(summary):,} plugins   "
                 f"{verdict(summary_ms, SUMMARY_TARGET_MS)}")
    lines.append(f"  first call on a new Ledger         {cold:9.3f} ms   (opens the file and the connection)")
    lines.append(f"  baseline: one GROUP BY of the runs {describe(group_times)}   summary = {summary_ms / group_ms:.4f}x the baseline "
                 f"({group_ms / summary_ms:,.0f}x faster; both agree: {'yes' if agrees else 'NO'})")
    if first:
        names = plugin_names(args.plugins)
        naive = naive_summary(conn, names)
        naive_times = timed(lambda: naive_summary(conn, names), args.naive_repeat)
        naive_agrees = same_summary(summary, naive)
        lines.append(f"  for scale: one labelled query/plugin (Gas Town's way)  {describe(naive_times)}   "
                     f"= {statistics.median(naive_times) / group_ms:.1f}x the GROUP BY (agrees: {'yes' if naive_agrees else 'NO'})")
        agrees = agrees and naive_agrees
    conn.close()
    try:
        big_pairs, big_claims = record_runs(ledger, args.records)
    finally:
        ledger.close()
        forget_bench_runs(path)
    with tempfile.TemporaryDirectory(prefix="gtui-empty-ledger-") as empty_dir:
        empty = open_ledger(Path(empty_dir) / "ledger.db")
        empty_pairs, empty_claims = record_runs(empty, args.records)
        empty.close()
    pair_ms, empty_ms = statistics.median(big_pairs), statistics.median(empty_pairs)
    lines.append(f"  claim_run + close_run              {describe(big_pairs)}   {verdict(pair_ms, RECORD_TARGET_MS)}")
    lines.append(f"  baseline: the same, empty ledger   {describe(empty_pairs)}   big / empty = {pair_ms / empty_ms:.2f}x")
    lines.append(f"  claim_run alone                    {describe(big_claims)}   "
                 f"(empty ledger: median {statistics.median(empty_claims):.3f} ms)")
    ok = summary_ms < SUMMARY_TARGET_MS and pair_ms < RECORD_TARGET_MS and agrees
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wisps", default="1000000,10000000", help="run wisps per ledger, comma-separated: how cost grows [1M,10M]")
    parser.add_argument("--plugins", type=int, default=1_000, help="plugins they belong to [1,000]")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls of plugin_summary() [20]")
    parser.add_argument("--naive-repeat", type=int, default=3, help="timed passes of each baseline query [3]")
    parser.add_argument("--records", type=int, default=200, help="runs recorded per ledger [200]")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "gtui-bench", help="where built ledgers are kept")
    parser.add_argument("--rebuild", action="store_true", help="build the ledgers again even when cached")
    args = parse_quick(parser, argv, {"wisps": "100000", "plugins": 200, "repeat": 5, "naive_repeat": 1, "records": 50})
    sizes = [int(part) for part in args.wisps.split(",") if part.strip()]
    if args.plugins < 1 or any(wisps < 2 * args.plugins for wisps in sizes):
        parser.error("need at least one plugin and at least two wisps per plugin")
    print(f"gtui ledger bench: python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs; {in_process()}")
    ok = True
    for index, wisps in enumerate(sizes):
        path, origin = ensure(wisps, args.plugins, args.cache_dir, args.rebuild)
        size_mb = sum(f.stat().st_size for f in path.parent.iterdir()) / 1e6
        print(f"\nledger: {args.plugins:,} plugins, {wisps:,} run wisps; {size_mb:,.0f} MB at {path} ({origin})")
        good, lines = measure_size(path, args, first=index == 0)
        print("\n".join(lines))
        ok &= good
    print(f"\noverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
