"""Peer benchmark (optional, ``make bench-peers``): gtui's kennel beside APScheduler 4 on the same runs.

    .venv/bin/python bench/peer_bench.py              # 1,000 runs, 4 workers, 3 rounds
    .venv/bin/python bench/peer_bench.py --quick      # 200 runs, 1 round

The same N trivial jobs (a plugin directory's ``bash run.sh``, run.sh being ``true``), 4 at a
time, every run recorded, on SQLite and on PostgreSQL (a server of the ``pgserver`` wheel, as
the tests start one):

- gtui: the kennel's 4 dogs, gtui installed from a wheel (with its ``postgresql`` extra) into a
  venv of its own, fed by an Engine in this process as in bench/engine_bench.py part 4 (queued
  in one commit, until every run is closed on the ledger);
- APScheduler 4 (``apscheduler>=4.0.0a5``, a pre-release) in a venv of its own under the temp
  directory: its SQLAlchemy data store (aiosqlite; asyncpg), ``max_concurrent_jobs=4``, every
  job's result kept (bench/peer_apscheduler.py); and, for scale, its default memory store.

Rounds alternate gtui and APScheduler, store by store, so the machine's drift falls on both;
each figure is the median of its rounds, and the ratio is gtui / APScheduler.  There is no
target: the figures are printed.  When APScheduler 4 cannot be installed here the script says so
in one line and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import CACHE, Install, cached_venv, installed_gtui, parse_quick, quietly
from engine_bench import kennel_engine, kennel_rate, throughput_town

PEER = ("apscheduler>=4.0.0a5", "sqlalchemy[asyncio]>=2", "aiosqlite", "asyncpg", "sniffio")
WORKLOAD = Path(__file__).resolve().parent / "peer_apscheduler.py"


def peer_venv() -> Path:
    """APScheduler 4 and its drivers in a venv of their own (cached; a pre-release, so ``--pre``)."""
    key = hashlib.sha256("\n".join([*PEER, sys.version]).encode()).hexdigest()[:16]

    def fill(side: Path, python: str) -> None:
        quietly([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--pre", *PEER])

    return cached_venv(CACHE / f"peer-apscheduler-{key}", fill, "APScheduler 4")


def peer_rate(venv: Path, store: str, workers: int, dirs_file: Path) -> dict[str, object]:
    """One APScheduler round: its own process, its own clock (from the first job added to the last released)."""
    done = subprocess.run([str(venv / "bin" / "python"), str(WORKLOAD), store, str(workers), str(dirs_file)],
                          capture_output=True, text=True, cwd=dirs_file.parent)
    if done.returncode != 0:
        raise SystemExit(f"APScheduler on {store.split(':')[0]} failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout)


@contextlib.contextmanager
def postgres(work: Path) -> Iterator[str]:
    """A PostgreSQL server of the pgserver wheel, as the tests and bench/hosts_bench.py start one."""
    import pgserver

    server = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def database(base: str, name: str) -> str:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.replace("/postgres?", f"/{name}?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="trivial jobs per round [1,000]")
    parser.add_argument("--workers", type=int, default=4, help="gtui's dogs, APScheduler's max_concurrent_jobs [4]")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds [3]")
    args = parse_quick(parser, argv, {"runs": 200, "rounds": 1})
    try:
        venv = peer_venv()
    except SystemExit as exc:
        print(f"peer bench skipped: APScheduler 4 cannot be installed here ({str(exc).splitlines()[-1][:200]})")
        return 0
    install = installed_gtui(extras=("postgresql",))
    print(f"gtui: {install.describe()}; APScheduler 4: in {venv}")
    with tempfile.TemporaryDirectory(prefix="gtui-peer-bench-") as scratch:
        work = Path(scratch)
        rates = run_rounds(args, install, venv, work)
    report(args, rates)
    return 0


def run_rounds(args: argparse.Namespace, install: Install, venv: Path, work: Path) -> dict[str, list]:
    """Every round: gtui then APScheduler on SQLite, the same on PostgreSQL, then APScheduler's memory store."""
    lite_dirs = throughput_town(work / "lite", args.runs, args.workers)
    throughput_town(work / "pg", args.runs, args.workers)
    dirs_file = work / "dirs.txt"
    dirs_file.write_text("\n".join(map(str, lite_dirs)) + "\n", encoding="utf-8")
    rates: dict[str, list] = {key: [] for key in ("gtui sqlite", "aps sqlite", "gtui pg", "aps pg", "aps memory")}
    with postgres(work) as base:
        with (work / "pg" / "settings" / "gtui.toml").open("a", encoding="utf-8") as settings:
            settings.write(f'ledger = "{database(base, "gtui")}"\n')
        aps_pg = database(base, "apscheduler").replace("postgresql://", "postgresql+asyncpg://", 1)
        stores = {"sqlite": f"sqlite+aiosqlite:///{work / 'apscheduler.db'}", "pg": aps_pg}
        with kennel_engine(install, work / "lite") as lite, kennel_engine(install, work / "pg") as pg:
            engines = {"sqlite": (lite, lite.plugins().plugins), "pg": (pg, pg.plugins().plugins)}
            for _round in range(args.rounds):
                for key, (engine, plugins) in engines.items():
                    rates[f"gtui {key}"].append(kennel_rate(engine, plugins))
                    rates[f"aps {key}"].append(peer_rate(venv, stores[key], args.workers, dirs_file))
                rates["aps memory"].append(peer_rate(venv, "memory", args.workers, dirs_file))
    return rates


def report(args: argparse.Namespace, rates: dict[str, list]) -> None:
    medians = {key: statistics.median(value[0] if key.startswith("gtui") else value["rate"] for value in values)
               for key, values in rates.items()}
    recorded = sum(value[1] for key, values in rates.items() if key.startswith("gtui") for value in values)
    succeeded = sum(value["outcomes"].get("success", 0) for key, values in rates.items() if key.startswith("aps") for value in values)
    versions = rates["aps sqlite"][0]["versions"]
    print(f"\n{args.runs:,} trivial jobs (bash run.sh: true), {args.workers} at a time, every run recorded; {args.rounds} rounds, "
          f"alternating (medians); gtui {recorded:,} of {2 * args.runs * args.rounds:,} runs success, APScheduler "
          f"{succeeded:,} of {3 * args.runs * args.rounds:,} jobs success")
    print("  APScheduler " + ", ".join(f"{name} {number}" for name, number in versions.items()))
    for key, label, driver in (("sqlite", "SQLite", "SQLAlchemy + aiosqlite"), ("pg", "PostgreSQL", "SQLAlchemy + asyncpg")):
        gtui, peer = medians[f"gtui {key}"], medians[f"aps {key}"]
        print(f"  {label:<11} gtui kennel, {args.workers} dogs {gtui:8.1f} runs/s   APScheduler 4 ({driver}) {peer:8.1f} jobs/s   "
              f"gtui / APScheduler = {gtui / peer:.2f}x")
    memory = medians["aps memory"]
    print(f"  for scale: APScheduler 4's default memory store (nothing recorded) {memory:8.1f} jobs/s   "
          f"gtui on SQLite / this = {medians['gtui sqlite'] / memory:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
