"""Kennels in tests: one inside the test's own process, and the stopping of every kennel a test's commands started."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from gtcore.core.errors import KennelBusy
from gtcore.dogs.kennel import Kennel
from gtcore.engine import Engine
from gtcore.town.layout import Town


@contextlib.contextmanager
def kennel_here(town: Path, **options: object) -> Iterator[Kennel | None]:
    """A kennel for ``town`` on this host, inside this process (its dogs are threads of the test): it holds the town's
    lock, so no command of the test starts another; it stops its runs and lets go at the end.  None when a kennel of
    another process (a command the test ran) holds the town already: that one runs what is queued."""
    house = Kennel(kennel_engine(town), **options)  # type: ignore[arg-type]
    try:
        house.open()
    except KennelBusy:
        house.engine.close()
        yield None
        return
    try:
        yield house.start()
    finally:
        house.close()


def kennel_engine(town: Path) -> Engine:
    """A kennel's engine as the gtui command makes it: its runs find the plugin-facing gt and bd first on their PATH."""
    from gtui.shims.bin import plugin_bin

    located = Town.locate(town)
    return Engine(located, plugin_bin=partial(plugin_bin, located))


_STARTED: list[Kennel] = []  # kennels started for the running test: closed at its end (see close_test_kennels)


def start_kennel(town: Path, **options: object) -> Kennel | None:
    """A kennel for ``town`` in this process until the test ends (closed by the suite's autouse fixture); None when a
    kennel of another process holds the town."""
    house = Kennel(kennel_engine(town), **options)  # type: ignore[arg-type]
    try:
        house.open()
    except KennelBusy:
        house.engine.close()
        return None
    _STARTED.append(house)
    return house.start()


def kennels_of_this_test() -> list[Kennel]:
    """The kennels :func:`start_kennel` started for the running test."""
    return list(_STARTED)


def close_test_kennels() -> None:
    """Close every kennel :func:`start_kennel` started (each stops and records its runs)."""
    while _STARTED:
        _STARTED.pop().close()


def kennel_pids(under: Path) -> list[int]:
    """The kennel processes serving a town under ``under`` (by their command line)."""
    found = []
    marker = str(under).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                words = handle.read().split(b"\0")
        except OSError:
            continue
        if b"kennel" in words and any(word.startswith(marker) for word in words):
            found.append(int(name))
    return found


def stop_kennels_under(under: Path, grace: float = 5.0) -> None:
    """SIGTERM each kennel of a town under ``under`` (it stops its runs and records them), SIGKILL what is left after ``grace``."""
    pids = kennel_pids(under)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def served(town: Path, engine: Engine | None = None) -> Iterator[Engine]:
    """An engine for ``town`` (this one, or a new one) with a kennel beside it in this process: what it queues is run."""
    engine = engine or Engine(Town.locate(town))
    try:
        with kennel_here(town):
            yield engine
    finally:
        engine.close()


def kennel_pid(town: Path, host: str | None = None) -> int | None:
    """The pid of the kennel alive for ``town`` on ``host`` (this host by default), from its lock."""
    from gtcore.dogs.kennel import alive, place

    words = alive(place(Town.locate(town), host))
    return words.get("pid") if words else None
