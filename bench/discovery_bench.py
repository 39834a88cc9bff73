"""Discovery benchmark: scan a town of 1,000 plugin files.

    .venv/bin/python bench/discovery_bench.py              # 1,000 files, median of 9 scans
    .venv/bin/python bench/discovery_bench.py --profile    # also print the top cProfile costs
    .venv/bin/python bench/discovery_bench.py --quick      # 200 files, 3 scans

Times ``gtcore.plugins.discovery.discover(Town(root))`` without its cache (every file parsed) against
baselines from the same run: walking the same tree and reading the same files raw, and that plus
``tomllib`` on each frontmatter (the floor for any TOML-based parser).  Then the everyday scan,
with the plugin cache warm (unchanged files only stat'ed), against walking the tree and stat'ing
the same files.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from benchkit import describe, in_process, parse_quick, settle, timed

from gtcore.plugins.cache import PluginCache
from gtcore.plugins.discovery import discover
from gtcore.town.layout import Town

TARGET_MS = 100.0
RIGS = ("alpha", "beta", "gamma", "delta", "epsilon")
CREW = {"alpha": ("alice", "bob"), "beta": ("carol",), "gamma": ("dave",)}
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo")


def gate_block(rng: random.Random, n: int) -> str:
    kind = ("cooldown", "cron", "condition", "event", "manual")[n % 5]
    if kind == "cooldown":
        return f'[gate]\ntype = "cooldown"\nduration = "{rng.choice(("90s", "5m", "1h30m", "24h", "168h", "2d"))}"\n'
    if kind == "cron":
        zone = f'timezone = "{rng.choice(ZONES)}"\n' if rng.random() < 0.5 else ""
        schedule = rng.choice(("0 3 * * *", "*/15 * * * *", "30 2 * * 1-5", "0 0 1 * *", "5 4 * * sun"))
        return f'[gate]\ntype = "cron"\nschedule = "{schedule}"\n{zone}'
    if kind == "condition":
        return '[gate]\ntype = "condition"\ncheck = "test -f /tmp/needs-work"\ncheck_timeout = "10s"\n'
    if kind == "event":
        return f'[gate]\ntype = "event"\non = "{rng.choice(("startup", "deploy", "merge"))}"\n'
    return '[gate]\ntype = "manual"\n'


def plugin_text(rng: random.Random, name: str, n: int, script: bool) -> str:
    if n % 97 == 13:  # a few broken files: they must be listed as invalid, not skipped
        return rng.choice(
            (
                f'+++\nname = "{name}"\n[gate]\ntype = "cooldown"\nduration = \n+++\nbroken TOML\n',
                f'+++\nname = "{name}"\n[gate]\ntype = "cron"\nschedule = "not a cron"\n+++\nbad schedule\n',
                f'+++\nname = "{name}"\n+++\nno gate at all\n',
            )
        )
    lines = [
        "+++",
        f'name = "{name}"',
        f'description = "Benchmark plugin {n}: keeps the {rng.choice(("logs", "caches", "branches", "docs"))} tidy"',
        f'version = "1.{n % 7}.0"',
    ]
    if n % 11 == 0:
        lines.append("enabled = false")
    if n % 31 == 0:
        lines.append('owner = "someone"')  # unknown key: a warning
    lines.append(gate_block(rng, n).rstrip("\n"))
    if n % 3 == 0:
        lines += ["[tracking]", f'labels = ["team:{rng.choice(("infra", "docs", "ci"))}", "tier:{n % 3}"]', "digest = true"]
    lines += ["[execution]", f'type = "{"script" if script else "agent"}"', f'timeout = "{rng.choice(("30s", "5m", "10m", "1h"))}"']
    if n % 4 == 0:
        lines += ["notify_on_failure = true", f'severity = "{rng.choice(("low", "medium", "high", "critical"))}"']
    lines.append("+++")
    body = [f"# {name}", "", "Instructions for the agent that runs this plugin.", ""]
    body += [f"{step}. {rng.choice(('Check', 'Prune', 'Report on', 'Rebuild'))} the thing number {step}." for step in range(1, 6)]
    return "\n".join(lines) + "\n\n" + "\n".join(body) + "\n"


def make_town(root: Path, files: int, seed: int = 7) -> dict[str, int]:
    """A town with ``files`` plugin.md files: town level, rigs, crew clones (shadowing some)."""
    rng = random.Random(seed)
    homes: list[tuple[Path, str]] = [(root / "plugins", "town")]
    homes += [(root / rig / "plugins", rig) for rig in RIGS]
    homes += [(root / rig / "crew" / member / "plugins", f"{rig}/{member}") for rig, crew in CREW.items() for member in crew]
    weights = [2] + [3] * len(RIGS) + [1] * (len(homes) - 1 - len(RIGS))
    counts = {"files": 0, "scripts": 0}
    rig_names: dict[str, list[str]] = {}
    for n in range(files):
        home, owner = rng.choices(homes, weights)[0]
        rig = owner.split("/")[0]
        if "/" in owner and rig_names.get(rig) and rng.random() < 0.6:
            name = rng.choice(rig_names[rig])  # a crew clone of a rig plugin: shadowed by the rig's copy
        elif owner == "town" and rng.random() < 0.1 and any(rig_names.values()):
            name = rng.choice(rng.choice([names for names in rig_names.values() if names]))  # shadowed by a rig
        else:
            name = f"{rig}-plugin-{n:04d}"
            rig_names.setdefault(rig, []).append(name)
        directory = home / f"{name}-{n}"
        directory.mkdir(parents=True)
        script = n % 2 == 0
        (directory / "plugin.md").write_text(plugin_text(rng, name, n, script), encoding="utf-8")
        if script:
            (directory / "run.sh").write_text("#!/bin/bash\necho hello\n", encoding="utf-8")
            counts["scripts"] += 1
        counts["files"] += 1
    # Things discovery must skip: dot-directories and directories without plugin.md.
    for rig in ("town", *RIGS[:2]):
        plugins = root / "plugins" if rig == "town" else root / rig / "plugins"
        (plugins / ".git").mkdir(parents=True, exist_ok=True)
        (plugins / ".disabled-plugin").mkdir(exist_ok=True)
        (plugins / ".disabled-plugin" / "plugin.md").write_text('+++\nname = "hidden"\n+++\n', encoding="utf-8")
        (plugins / "notes").mkdir(exist_ok=True)
        (plugins / "README.md").write_text("not a plugin\n", encoding="utf-8")
    return counts


def raw_walk(root: Path) -> int:
    """Baseline: walk the same tree and read every plugin.md raw, no parsing."""
    total = 0
    for directory, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if "plugin.md" in names:
            with open(os.path.join(directory, "plugin.md"), "rb") as handle:
                total += len(handle.read())
    return total


def walk_and_toml(root: Path) -> int:
    """Baseline 2: the same, plus tomllib on each frontmatter (the floor for TOML parsing)."""
    total = 0
    for directory, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if "plugin.md" in names:
            with open(os.path.join(directory, "plugin.md"), encoding="utf-8") as handle:
                parts = handle.read().split("+++\n")
            with contextlib.suppress(tomllib.TOMLDecodeError, IndexError):
                total += len(tomllib.loads(parts[1]))
    return total


def walk_and_stat(root: Path) -> int:
    """Baseline 3: a tight ``os.scandir`` walk stat'ing each plugin.md and run.sh (the least a cached scan must do)."""
    total = 0
    pending = [str(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                pending.append(entry.path)
                with contextlib.suppress(OSError):
                    total += os.stat(entry.path + "/plugin.md").st_size
                    total += os.stat(entry.path + "/run.sh").st_size
    return total


def cached_scans(town: Town, cache_file: Path, repeat: int) -> list[float]:
    """Scans with a warm plugin cache, each loading it from disk as a process would."""
    filler = PluginCache(cache_file)
    discover(town, filler)
    filler.save()
    return timed(lambda: discover(town, PluginCache(cache_file, writable=False)), repeat)


def profile(town: Town, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(3):
        discover(town)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write("cProfile of 3 scans, by own time:\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_000, help="plugin.md files in the town [1,000]")
    parser.add_argument("--repeat", type=int, default=9, help="timed scans [9]")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile costs (also done when over target)")
    parser.add_argument("--top", type=int, default=25, help="rows of profile output [25]")
    args = parse_quick(parser, argv, {"files": 200, "repeat": 3})

    with tempfile.TemporaryDirectory(prefix="gtui-discovery-bench-") as tmp:
        root = Path(tmp) / "town"
        start = time.perf_counter()
        counts = make_town(root, args.files)
        made = time.perf_counter() - start
        settle(root)  # a town's files are not seconds old: the cache skips files changed in the last seconds
        town = Town(root)

        first = timed(lambda: discover(town), 1)[0]
        found = discover(town)
        scans = timed(lambda: discover(town), args.repeat)
        walk = timed(lambda: raw_walk(root), args.repeat)
        toml = timed(lambda: walk_and_toml(root), args.repeat)
        cached = cached_scans(town, Path(tmp) / "plugins.cache", args.repeat)
        stats = timed(lambda: walk_and_stat(root), args.repeat)

        shadowed = sum(len(plugin.shadowed) for plugin in found.plugins)
        seen = len(found.plugins) + len(found.invalid) + shadowed
        median = statistics.median(scans)
        print(f"gtui discovery bench: python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {in_process()}")
        print(
            f"town: {counts['files']:,} plugin.md files ({counts['scripts']:,} with run.sh) across town level, "
            f"{len(RIGS)} rigs and {sum(map(len, CREW.values()))} crew clones; made in {made:.2f} s"
        )
        print(
            f"found: {len(found.plugins):,} plugins, {shadowed:,} shadowed copies, {len(found.invalid):,} invalid, "
            f"{len(found.warnings):,} warnings ({'all' if seen == counts['files'] else 'NOT all'} {counts['files']:,} files accounted for)"
        )
        print()
        verdict = f"target < {TARGET_MS:g} ms: {'PASS' if median < TARGET_MS else 'FAIL'}"
        print(f"  discover(Town(root))               {describe(scans)}   {verdict}")
        print(f"  first scan (fresh process caches)  {first:8.2f} ms")
        print(f"  baseline: os.walk + read raw       {describe(walk)}")
        print(f"  baseline: walk + read + tomllib    {describe(toml)}")
        print(f"  discover / raw walk                {median / statistics.median(walk):.1f}x")
        print(f"  discover / walk + tomllib          {median / statistics.median(toml):.2f}x")
        print()
        print(f"  cached discover (cache loaded)     {describe(cached)}")
        print(f"  baseline: scandir walk + stat      {describe(stats)}")
        print(f"  cached discover / scandir + stat   {statistics.median(cached) / statistics.median(stats):.2f}x")
        print(f"  per file                           {median / counts['files'] * 1000:8.1f} us")
        if args.profile or median >= TARGET_MS:
            print()
            print(profile(town, args.top))
    return 0 if median < TARGET_MS and seen == counts["files"] else 1


if __name__ == "__main__":
    sys.exit(main())
