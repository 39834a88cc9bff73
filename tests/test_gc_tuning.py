"""The control room's garbage-collector tuning is the entry point's, and always put back: thresholds, and what was frozen."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
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
