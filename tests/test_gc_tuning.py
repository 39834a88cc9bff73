"""The control room's garbage-collector tuning is the entry point's, and always put back: thresholds, and what was frozen."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from gtui.tui.gc_tuning import MALLOC_ARENAS, YOUNG_THRESHOLD, GcTuning


@pytest.fixture(autouse=True)
def odd_thresholds() -> Iterator[tuple[int, int, int]]:
    """Thresholds no default has, so "put back" cannot pass by luck; the process's own come back after the test."""
    before = gc.get_threshold()
    gc.set_threshold(123, 7, 9)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_inside_young_collections_wait_longer_and_on_exit_the_thresholds_and_the_freeze_are_undone(
        odd_thresholds: tuple[int, int, int]) -> None:
    frozen = gc.get_freeze_count()
    with GcTuning() as tuning:
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 7, 9)
        tuning.freeze()
        tuning.freeze()  # once is enough: a second call adds nothing to unfreeze
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == odd_thresholds
    assert gc.get_freeze_count() == frozen


def test_an_exception_inside_puts_everything_back_too(odd_thresholds: tuple[int, int, int]) -> None:
    frozen = gc.get_freeze_count()
    with pytest.raises(RuntimeError, match="the app crashed"), GcTuning(young=5000) as tuning:
        assert gc.get_threshold() == (5000, 7, 9)
        tuning.freeze()
        raise RuntimeError("the app crashed")
    assert gc.get_threshold() == odd_thresholds
    assert gc.get_freeze_count() == frozen


def test_freezing_outside_the_context_does_nothing(odd_thresholds: tuple[int, int, int]) -> None:
    """An app given the hook but run without the context (a test, an embedder) must not leave objects frozen for good."""
    frozen = gc.get_freeze_count()
    tuning = GcTuning()
    tuning.freeze()
    assert gc.get_freeze_count() == frozen
    with tuning:
        pass
    tuning.freeze()
    assert gc.get_freeze_count() == frozen and gc.get_threshold() == odd_thresholds


THREADS_MALLOCING = """
import ctypes, sys, threading
from gtui.tui.gc_tuning import share_malloc_arenas
if sys.argv[1] == "shared":
    assert share_malloc_arenas()
together = threading.Barrier(8)
def work():
    together.wait()
    blocks = [bytearray(4096) for _ in range(100)]  # past pymalloc's 512 bytes: malloc's, in this thread's arena
    together.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()  # "Arena N:" per arena, on stderr
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")
def test_shared_malloc_arenas_hold_eight_threads_mallocing_at_once_in_two() -> None:
    """A process of its own: the setting is for a whole process, for good."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    arenas = {}
    for mode in ("own", "shared"):
        done = subprocess.run([sys.executable, "-c", THREADS_MALLOCING, mode], capture_output=True, text=True, env=env, check=True)
        arenas[mode] = done.stderr.count("Arena ")
    assert arenas["own"] > MALLOC_ARENAS  # each thread got its own: the default this turns off
    assert 1 <= arenas["shared"] <= MALLOC_ARENAS


def _full_collections() -> tuple[list[str], object]:
    """The threads that ran full collections, as they happen (and the callback, to remove)."""
    seen: list[str] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            seen.append(threading.current_thread().name)

    gc.callbacks.append(note)
    return seen, note


def test_once_frozen_a_full_collection_comes_every_tidy_seconds_and_stops_on_exit() -> None:
    """An idle control room's self-referring rendered lines are freed within ``tidy`` seconds, not minutes."""
    seen, note = _full_collections()
    try:
        with GcTuning(tidy=0.02) as tuning:
            time.sleep(0.1)
            assert "gc-tidy" not in seen  # start-up is not tidied: its objects are about to be frozen
            tuning.freeze()
            deadline = time.monotonic() + 10
            while seen.count("gc-tidy") < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert seen.count("gc-tidy") >= 3
        after = seen.count("gc-tidy")
        assert not any(thread.name == "gc-tidy" for thread in threading.enumerate())
        time.sleep(0.1)
        assert seen.count("gc-tidy") == after
    finally:
        gc.callbacks.remove(note)


def test_without_tidy_no_collection_is_added() -> None:
    seen, note = _full_collections()
    try:
        with GcTuning() as tuning:
            tuning.freeze()
            time.sleep(0.1)
            assert not any(thread.name == "gc-tidy" for thread in threading.enumerate())
        assert "gc-tidy" not in seen
    finally:
        gc.callbacks.remove(note)


def test_a_tidy_thread_that_cannot_start_costs_nothing_and_everything_is_put_back(
        odd_thresholds: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """At a process's thread limit the control room runs untidied, and still leaves the collector as it found it."""
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    frozen = gc.get_freeze_count()
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with GcTuning(tidy=0.01) as tuning:
        tuning.freeze()
    assert gc.get_threshold() == odd_thresholds
    assert gc.get_freeze_count() == frozen
