"""What every benchmark here shares: timing a call, summarising samples, saying PASS or FAIL."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def describe(samples: list[float], unit: str = "ms", digits: int = 2) -> str:
    """``median 1.23 ms  (n=20, min …, p95 …, max …)``."""
    spread = f"n={len(samples)}, min {min(samples):.{digits}f}, p95 {p95(samples):.{digits}f}, max {max(samples):.{digits}f}"
    return f"median {statistics.median(samples):9.{digits}f} {unit}   ({spread})"


def verdict(ok: bool, target: str) -> str:
    return f"{target}: {'PASS' if ok else 'FAIL'}"
