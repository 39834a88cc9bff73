"""What every benchmark here shares: timing a call, summarising samples, saying PASS or FAIL."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path


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


def process_ms(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None, check: bool = True) -> float:
    """Wall milliseconds of one whole process, as a user waits for it (start, import, work, exit)."""
    import subprocess

    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    if check and done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def alternate(commands: dict[str, list[str]], rounds: int, env: dict[str, str] | None = None,
              warmup: int = 1) -> dict[str, list[float]]:
    """Time whole processes side by side: every round runs each command once, in turn.

    Alternating A/B/A/B (never all A then all B) spreads the machine's drift (a
    checkpoint, another process waking) over every command alike, so their
    ratio is fair.  ``warmup`` rounds fill the page cache and are not counted.
    """
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for round_number in range(warmup + rounds):
        for label, argv in commands.items():
            elapsed = process_ms(argv, env)
            if round_number >= warmup:
                samples[label].append(elapsed)
    return samples


def ratio_line(label: str, samples: list[float], baseline_label: str, baseline: list[float]) -> str:
    """``label  median X ms  = R× baseline (median Y ms)``."""
    mine, theirs = statistics.median(samples), statistics.median(baseline)
    return f"{label:<44} median {mine:8.1f} ms   {mine / theirs:5.2f}× {baseline_label} ({theirs:.1f} ms)"


def settle(root: Path) -> None:
    """Date every file of the town an hour back, as a town's plugins are: caches skip files changed in the last seconds."""
    past = time.time() - 3600
    for directory, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # the poison corpus holds dangling links, loops and FIFOs
                os.utime(os.path.join(directory, name), (past, past), follow_symlinks=False)
