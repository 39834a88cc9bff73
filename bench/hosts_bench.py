"""Hosts benchmark: the PostgreSQL ledger beside the SQLite one, in the same run.

    .venv/bin/python bench/hosts_bench.py                     # 1,000,000 wisps for the summary
    .venv/bin/python bench/hosts_bench.py --wisps 100000      # scaled down
    .venv/bin/python bench/hosts_bench.py --quick             # 100,000 wisps, 50 records, 200 runs

Starts a real PostgreSQL server (the pgserver wheel) in a temp directory and
prints, each PostgreSQL figure beside SQLite's from the same run:

1. claim + close of one run (the dogs' bookkeeping), median of ``--records``;
2. the plugin summary of 1,000 plugins over ``--wisps`` wisps (target < 50 ms),
   beside one ``GROUP BY`` over the same wisps;
3. 1,000 trivial runs: three hosts (``GT_HOST``) of four dogs each racing
   for them, against one host of four dogs, as whole ``gtui --once`` processes of gtui
   installed from a wheel (with its ``postgresql`` extra) into a venv of its own;
4. the time from a run closing on one host to another host's listener hearing
   it (LISTEN/NOTIFY, what wakes a control room; it also polls once a second).

1, 2 and 4 run in-process, in the interpreter that runs this script (the development venv).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from benchkit import Install, describe, in_process, installed_gtui, parse_quick, verdict

from gtcore.storage import ledger_at, open_ledger
from gtcore.storage.contract import Ledger

SUMMARY_TARGET_MS = 50.0
HOSTS = ("alpha-host", "beta-host", "gamma-host")


def claim_close_ms(ledger: Ledger, records: int) -> list[float]:
    samples = []
    for n in range(records):
        start = time.perf_counter()
        run = ledger.claim_run(f"bench-{n % 50}", "town")
        ledger.close_run(run.id, "success")
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def fill_postgres(url: str, wisps: int, plugins: int) -> float:
    """``wisps`` closed runs of ``plugins`` plugins, written by the server itself in bulk.

    The per-row triggers are off while the bulk goes in (a million of them
    would take minutes); the labels and the summary are then made in one
    statement each, to the same rows the triggers would have written.
    """
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE beads DISABLE TRIGGER USER")
        conn.execute(
            "INSERT INTO beads (kind, title, status, created_at, updated_at, closed_at, plugin, rig, result, data)"
            " SELECT 'wisp', 'run p' || (n %% %s), 'closed', 1.7e9 + n, 1.7e9 + n, 1.7e9 + n + 1, 'p' || (n %% %s), 'town',"
            " CASE WHEN n %% 10 = 0 THEN 'failure' ELSE 'success' END, '{\"duration_s\": 1.0}'::jsonb"
            " FROM generate_series(1, %s) AS n", (plugins, plugins, wisps))
        conn.execute("ALTER TABLE beads ENABLE TRIGGER USER")
        conn.execute("INSERT INTO labels SELECT id, unnest(ARRAY['type:plugin-run', 'plugin:' || plugin, 'rig:' || rig,"
                     " 'result:' || result]) FROM beads WHERE kind = 'wisp'")
        conn.execute("INSERT INTO plugin_stats SELECT DISTINCT ON (plugin) plugin, count(*) OVER w,"
                     " (count(*) FILTER (WHERE result IN ('failure', 'timeout')) OVER w)::int, id, created_at, result, body"
                     " FROM beads WHERE kind = 'wisp' WINDOW w AS (PARTITION BY plugin) ORDER BY plugin, created_at DESC, id DESC")
        conn.execute("ANALYZE")
    return time.perf_counter() - start


def group_by_ms(url: str, repeat: int) -> list[float]:
    """The fairest baseline: one GROUP BY over the same wisps, no summary table."""
    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(repeat):
            start = time.perf_counter()
            conn.execute("SELECT plugin, count(*), count(*) FILTER (WHERE result IN ('failure', 'timeout')), max(created_at)"
                         " FROM beads WHERE kind = 'wisp' GROUP BY plugin").fetchall()
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def town_with_runs(root: Path, count: int) -> Path:
    (root / "settings").mkdir(parents=True)
    (root / "settings" / "gtui.toml").write_text('dogs = 4\nkill_grace = "1s"\n', encoding="utf-8")
    for n in range(count):
        directory = root / "plugins" / f"t{n:04d}"
        directory.mkdir(parents=True)
        (directory / "plugin.md").write_text(f'+++\nname = "t{n:04d}"\n[gate]\ntype = "cooldown"\nduration = "1h"\n+++\n')
        (directory / "run.sh").write_text("true\n")
    past = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (past, past))
    return root


def throughput(install: Install, root: Path, hosts: tuple[str, ...], url: str) -> float:
    """Runs per second of ``hosts`` gtui --once processes started together on one town (every run claimed, run, closed)."""
    env = install.env() | {"GT_LEDGER_URL": url}
    start = time.perf_counter()
    try:
        procs = [subprocess.Popen(install.gtui(root, "--once", "--json"), env={**env, "GT_HOST": host},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for host in hosts]
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"gtui --once failed: {err.strip()[-300:]}")
        elapsed = time.perf_counter() - start
    finally:  # each host's --once started a kennel: they go with the bench
        for host in hosts:
            subprocess.run(install.gtui(root, "kennel", "stop"), env={**env, "GT_HOST": host}, capture_output=True, timeout=60)
    runs = open_ledger(root / ".gtui" / "ledger.db", url=url).plugin_summary()
    done = sum(stats.run_count for stats in runs.values())
    if done != sum(1 for _ in (root / "plugins").iterdir()):
        raise SystemExit(f"{done} runs recorded for {len(runs)} plugins: not exactly once each")
    return done / elapsed


def visibility_ms(url: str, repeat: int) -> list[float]:
    """From one host's close committing to another host's ledger telling its listener (what wakes a control room)."""
    writer, watcher = ledger_at(url), ledger_at(url)
    heard = threading.Event()
    stop = watcher.listen(heard.set)
    time.sleep(0.5)  # the listener's connection is up
    samples = []
    try:
        for n in range(repeat):
            run = writer.claim_run(f"seen-{n}", "town")
            time.sleep(0.05)
            heard.clear()
            writer.close_run(run.id, "success")
            committed = time.perf_counter()
            if not heard.wait(5):
                raise SystemExit("no notification within 5 s")
            samples.append((time.perf_counter() - committed) * 1000)
    finally:
        stop()
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--wisps", type=int, default=1_000_000)
    parser.add_argument("--plugins", type=int, default=1_000)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1_000)
    args = parse_quick(parser, argv, {"wisps": 100_000, "records": 50, "runs": 200})

    import pgserver

    results: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="gtui-hosts-bench-") as tmp:
        work = Path(tmp)
        server = pgserver.get_server(work / "pg", cleanup_mode="stop")
        base = server.get_uri()

        def database(name: str) -> str:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return base.replace("/postgres?", f"/{name}?")

        try:
            with psycopg.connect(base) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
            print(f"gtui hosts bench: python {sys.version.split()[0]}, PostgreSQL {version}, {os.cpu_count()} CPUs")
            print(f"1, 2 and 4: {in_process()}")
            pg, lite = ledger_at(database("latency")), open_ledger(work / "latency.db")
            print("\n1. claim + close of one run")
            pg_ms, lite_ms = claim_close_ms(pg, args.records), claim_close_ms(lite, args.records)
            print(f"   PostgreSQL         {describe(pg_ms)}")
            ratio = statistics.median(pg_ms) / statistics.median(lite_ms)
            print(f"   SQLite (baseline)  {describe(lite_ms)}   PostgreSQL / SQLite = {ratio:.1f}x (a commit waits for the server's fsync)")

            url = database("summary")
            ledger_at(url).close()  # the schema
            filled = fill_postgres(url, args.wisps, args.plugins)
            big = ledger_at(url)
            summary: list[float] = []
            for _ in range(21):
                start = time.perf_counter()
                got = big.plugin_summary()
                summary.append((time.perf_counter() - start) * 1000)
            baseline = group_by_ms(url, 5)
            counted = sum(stats.run_count for stats in got.values())
            ok = statistics.median(summary) < SUMMARY_TARGET_MS and len(got) == args.plugins and counted == args.wisps
            results.append(ok)
            print(f"\n2. plugin summary, {args.plugins:,} plugins over {args.wisps:,} wisps (filled in {filled:.0f} s)")
            print(f"   PostgreSQL summary {describe(summary)}   {verdict(ok, f'< {SUMMARY_TARGET_MS:g} ms')}")
            print(f"   baseline: one GROUP BY over the wisps  {describe(baseline)}   "
                  f"summary {statistics.median(baseline) / statistics.median(summary):,.0f}x faster")

            install = installed_gtui(extras=("postgresql",))
            print(f"\n3. {args.runs:,} trivial runs (run.sh: true), whole gtui --once processes of 4 dogs each: {install.describe()}")
            one = throughput(install, town_with_runs(work / "one", args.runs), HOSTS[:1], database("one"))
            three = throughput(install, town_with_runs(work / "three", args.runs), HOSTS, database("three"))
            lite_one = throughput(install, town_with_runs(work / "lite", args.runs), HOSTS[:1], "")
            print(f"   3 hosts x 4 dogs, PostgreSQL   {three:8.1f} runs/s   / 1 host = {three / one:.2f}x")
            print(f"   1 host x 4 dogs, PostgreSQL    {one:8.1f} runs/s   (baseline)")
            print(f"   1 host x 4 dogs, SQLite        {lite_one:8.1f} runs/s   PostgreSQL / SQLite = {one / lite_one:.2f}x")
            print("   (three hosts on one 2-core machine share its cores: this shows the claims never collide, not a speed-up)")

            seen = visibility_ms(database("seen"), 30)
            print("\n4. a run closing on one host -> another host's listener hears it (LISTEN/NOTIFY: what wakes its control room)")
            print(f"   PostgreSQL         {describe(seen)}   then one collect; without a notification, the 1 s poll")
        finally:
            server.cleanup()
    print(f"\noverall: {'PASS' if all(results) else 'FAIL'}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
