"""APScheduler 4's side of bench/peer_bench.py, run by the peer's own venv (it imports nothing of gtui's).

    python peer_apscheduler.py STORE WORKERS DIRS_FILE

STORE is ``memory`` (APScheduler's default data store) or a SQLAlchemy URL (SQLite journalled
as gtui's ledger is: WAL, ``synchronous=NORMAL``); every line of
DIRS_FILE is a plugin directory whose ``run.sh`` is run once (``bash run.sh``, as gtui's dogs
start it).  The scheduler is started first (as gtui's kennel is up before its clock); then the
clock runs from adding the first job to the last one released, with ``WORKERS`` jobs at most at
once and every job's result kept in the data store (``result_expiration_time``), as gtui keeps
every run.  Prints one JSON line: jobs per second, the outcomes, the versions.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

from apscheduler import AsyncScheduler, JobReleased
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

KEEP_RESULTS_S = 3600  # every run recorded: a result kept for an hour, as gtui keeps every run's


def run_script(directory: str) -> None:
    """The job: the plugin's run.sh, as a dog starts it."""
    subprocess.run(["bash", "run.sh"], cwd=directory, check=True)


def sqlite_like_gtui(url: str) -> AsyncEngine:
    """An engine whose SQLite connections journal as gtui's ledger does (WAL, ``synchronous=NORMAL``): schedulers, not fsyncs, compared."""
    engine = create_async_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def journal(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def data_store(store: str) -> Any:
    if store == "memory":
        return MemoryDataStore()
    return SQLAlchemyDataStore(sqlite_like_gtui(store) if store.startswith("sqlite") else store)


async def rate(store: str, workers: int, dirs: list[str]) -> dict[str, object]:
    outcomes: Counter[str] = Counter()
    done = asyncio.Event()

    def released(event: JobReleased) -> None:
        outcomes[event.outcome.name] += 1
        if sum(outcomes.values()) == len(dirs):
            done.set()

    async with AsyncScheduler(data_store(store), max_concurrent_jobs=workers) as scheduler:
        scheduler.subscribe(released, JobReleased)
        await scheduler.start_in_background()
        start = time.perf_counter()
        for directory in dirs:
            await scheduler.add_job(run_script, args=[directory], result_expiration_time=KEEP_RESULTS_S)
        await done.wait()
        elapsed = time.perf_counter() - start
        await scheduler.stop()
    return {"rate": len(dirs) / elapsed, "outcomes": dict(outcomes),
            "versions": {name: version(name) for name in ("apscheduler", "sqlalchemy", "aiosqlite", "asyncpg")}}


if __name__ == "__main__":
    store, workers, dirs_file = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    print(json.dumps(asyncio.run(rate(store, workers, dirs_file.read_text().split()))))
