"""The control room's garbage-collector tuning is the entry point's, and always put back: thresholds, and what was frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gtui.gc_tuning import YOUNG_THRESHOLD, GcTuning


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
