"""A town full of poison: every malformed plugin kind at once must cost only itself.

One broken file in a real town must never hide the others, stop a patrol, or break
the next one.  So all the poison of ``tests/poison.py`` goes into ONE town beside a few
valid plugins, and the town is listed, patrolled twice and scanned in-process: every
poison must be reported (as an invalid plugin or a warning naming it), nothing may
vanish silently, and every valid plugin must still run exactly once.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from enginekit import gtui, make_town
from poison import (
    KINDS,
    MANUAL_ONLY,
    PLACES,
    ROOT_CAN_READ_ANYTHING,
    RUN_BY_THEMSELVES,
    SHADOW,
    Poison,
    build_one,
    build_poison,
    marker_lines,
    shadow_paths,
    valid_plugins,
)

from gtcore.plugins.discovery import PluginSet, discover
from gtcore.town.layout import Town

GTUI_TIMEOUT = 30.0  # a poison that blocks a read (a FIFO) must fail the test, not hang the suite
DISCOVER_TIMEOUT = 20.0
NESTING_KINDS = {"deep-arrays-500", "deep-inline-tables-500", "million-unclosed-brackets"}


def poisoned_town(tmp_path: Path) -> tuple[Path, list[Poison], list[str]]:
    """One town with settings, every poison kind and the valid plugins."""
    town = make_town(tmp_path / "town")
    poison = build_poison(town)
    valid = valid_plugins(town)
    return town, poison, valid


def mentions(warning: str, path: Path) -> bool:
    """``warning`` names ``path`` itself (or something inside it), not merely a longer sibling name."""
    return re.search(re.escape(str(path)) + r"(?=$|[/:\s'\"),])", warning) is not None


def is_reported(poison: Poison, invalid_paths: set[Path], warnings: list[str]) -> bool:
    as_invalid = bool(poison.accepted_invalid_paths & invalid_paths)
    as_warning = any(mentions(warning, poison.entry) for warning in warnings)
    if poison.either:
        return as_invalid or as_warning
    return as_invalid if poison.expect == "invalid" else as_warning


def unreported(poison: list[Poison], invalid_paths: set[Path], warnings: list[str]) -> list[str]:
    return [f"{item.name} ({item.expect}{' or the other' if item.either else ''}): {item.path}"
            for item in poison if not is_reported(item, invalid_paths, warnings)]


def entries_under_plugin_dirs(town: Path) -> list[Path]:
    """Every non-dot entry directly under each plugins directory of the town (symlinks included, never followed)."""
    found = []
    for place in PLACES:
        directory = town / place
        if directory.is_dir():
            found += [directory / name for name in sorted(os.listdir(directory)) if not name.startswith(".")]
    return found


def vanished(town: Path, valid_paths: set[Path], invalid_paths: set[Path], warnings: list[str]) -> list[Path]:
    """Entries that ended up nowhere: not a valid (or shadowed) plugin, not invalid, not named by a warning."""
    return [
        entry for entry in entries_under_plugin_dirs(town)
        if entry / "plugin.md" not in valid_paths
        and not {entry, entry / "plugin.md"} & invalid_paths
        and not any(mentions(warning, entry) for warning in warnings)
    ]


def assert_one_line_reason(error: Any, where: object) -> None:
    assert isinstance(error, str) and error.strip(), f"{where}: empty reason {error!r}"
    assert "\n" not in error and "\r" not in error, f"{where}: multi-line reason {error!r}"
    for leak in ("Traceback", "RecursionError", "internal error", "gate error"):
        assert leak not in error, f"{where}: {error}"


def assert_invalid_entry_shape(item: dict[str, Any]) -> None:
    assert_one_line_reason(item["error"], item["path"])
    assert item["line"] is None or (type(item["line"]) is int and item["line"] >= 1), item
    assert isinstance(item["rig"], str) and item["rig"], item


def assert_named_reasons(poison: list[Poison], errors: dict[Path, str]) -> None:
    """Where the contract names the reason: deep nesting is not RecursionError text, and big files hit the size cap."""
    by_kind = {item.name: errors.get(item.path) for item in poison}
    for kind in NESTING_KINDS & set(by_kind):
        error = by_kind[kind] or ""
        assert "recursion" not in error.lower(), f"{kind}: {error}"
    if "over-one-mib" in by_kind:
        assert "size cap" in (by_kind["over-one-mib"] or ""), by_kind["over-one-mib"]


def unblock_fifos(town: Path) -> None:
    """Release a reader stuck opening a FIFO poison, so a hang fails the test instead of the whole run."""
    for entry in entries_under_plugin_dirs(town):
        fifo = entry / "plugin.md"
        with contextlib.suppress(OSError):
            if stat.S_ISFIFO(os.lstat(fifo).st_mode):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def discover_within(town: Path, seconds: float = DISCOVER_TIMEOUT) -> PluginSet:
    """``discover()`` in-process, failing (not hanging) when a poison blocks it."""
    outcome: dict[str, Any] = {}

    def scan() -> None:
        try:
            outcome["found"] = discover(Town(town))
        except BaseException as exc:  # reported below, in the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=scan, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        unblock_fifos(town)
        worker.join(5)
        pytest.fail(f"discover() did not return within {seconds}s (a FIFO or a loop blocked it)")
    if "error" in outcome:
        error = outcome["error"]
        pytest.fail(f"discover() raised {type(error).__name__}: {str(error)[:300]}")
    return outcome["found"]


def run_once(town: Path) -> dict[str, Any]:
    """``gtui --once --json``: never a traceback (gtui() checks), never exit 2, one JSON document."""
    done = gtui(town, "--once", "--wait", "--json", timeout=GTUI_TIMEOUT)
    assert done.code != 2, f"--once refused the poisoned town: {done.out or done.err}"
    return done.json()


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in report["plugins"]}


def strict_invalid(poison: list[Poison]) -> list[Poison]:
    """Poison that can only be reported as an invalid plugin (so it shows in ``--once``'s invalid list too)."""
    return [item for item in poison if item.expect == "invalid" and not item.either]


# -- the corpus itself --------------------------------------------------------------------


def test_the_corpus_has_at_least_forty_distinct_kinds_in_all_three_places(tmp_path: Path) -> None:
    town, poison, valid = poisoned_town(tmp_path)
    kinds = [item.name for item in poison]
    assert len(set(kinds)) == len(kinds) >= 40
    assert len({item.path for item in poison}) == len(poison)
    for place in PLACES:
        assert any(town / place in item.path.parents or item.path.parent == town / place for item in poison), place
    assert set(RUN_BY_THEMSELVES + MANUAL_ONLY) == set(valid)


# -- (a) gtui plugin list --json ----------------------------------------------------------


def test_plugin_list_reports_every_poison_and_keeps_every_valid_plugin(tmp_path: Path) -> None:
    town, poison, valid = poisoned_town(tmp_path)
    done = gtui(town, "plugin", "list", "--json", timeout=GTUI_TIMEOUT)
    assert done.code == 0, done.out or done.err
    listing = done.json()

    for item in listing["invalid"]:
        assert_invalid_entry_shape(item)
    invalid_paths = {Path(item["path"]) for item in listing["invalid"]}
    warnings = listing["warnings"]
    assert all(isinstance(warning, str) and "\n" not in warning for warning in warnings), warnings
    assert unreported(poison, invalid_paths, warnings) == []

    plugins = {item["name"]: item for item in listing["plugins"]}
    assert sorted(plugins) == sorted(valid), "exactly the valid plugins are usable: no poison slipped through"
    winner, shadowed = shadow_paths(town)
    assert (Path(plugins[SHADOW]["path"]), plugins[SHADOW]["shadowed"]) == (winner, [str(shadowed)])
    assert shadowed not in invalid_paths, "a valid shadowed copy is not poison"
    assert Path(plugins["valid-town"]["path"]) == town / "plugins" / "valid-town" / "plugin.md"

    valid_paths = {Path(item["path"]) for item in listing["plugins"]} | {Path(p) for item in listing["plugins"] for p in item["shadowed"]}
    assert vanished(town, valid_paths, invalid_paths, warnings) == []
    assert_named_reasons(poison, {Path(item["path"]): item["error"] for item in listing["invalid"]})


# -- (b) gtui --once --json ---------------------------------------------------------------


def test_once_runs_every_valid_plugin_exactly_once_beside_the_poison(tmp_path: Path) -> None:
    town, poison, _ = poisoned_town(tmp_path)
    report = run_once(town)
    entries = by_name(report)

    assert sorted(entries) == sorted(RUN_BY_THEMSELVES + MANUAL_ONLY)
    for name in RUN_BY_THEMSELVES:
        item = entries[name]
        assert item["dispatched"] is True, item
        assert item["run"] is not None and item["run"]["result"] == "success", item
        assert marker_lines(town, name) == (["rig copy"] if name == SHADOW else [name]), name
    for name in MANUAL_ONLY:
        assert (entries[name]["dispatched"], entries[name]["run"]) == (False, None)
        assert marker_lines(town, name) == []
    assert entries[SHADOW]["rig"] == "alpha"
    for item in report["plugins"]:
        assert "gate error" not in item["gate"]["reason"], item

    for item in report["invalid"]:
        assert_invalid_entry_shape(item)
    listed = {Path(item["path"]) for item in report["invalid"]}
    assert [item.name for item in strict_invalid(poison) if not item.accepted_invalid_paths & listed] == []


# -- (c) a second patrol ------------------------------------------------------------------


def test_a_second_patrol_of_the_poisoned_town_still_works(tmp_path: Path) -> None:
    """Poison must not break later patrols either (overflowing durations once broke the second one)."""
    town, poison, _ = poisoned_town(tmp_path)
    run_once(town)
    report = run_once(town)
    entries = by_name(report)

    assert sorted(entries) == sorted(RUN_BY_THEMSELVES + MANUAL_ONLY)
    for name in RUN_BY_THEMSELVES:
        item = entries[name]
        assert (item["gate"]["open"], item["dispatched"], item["run"]) == (False, False, None), item
        assert "gate error" not in item["gate"]["reason"], item
        assert isinstance(item["gate"]["next_open_at"], str), item
        assert len(marker_lines(town, name)) == 1, f"{name} ran again while cooling down"
    opens = datetime.strptime(entries["valid-decade"]["gate"]["next_open_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert opens.year >= datetime.now(UTC).year + 9, opens

    listed = {Path(item["path"]) for item in report["invalid"]}
    assert [item.name for item in strict_invalid(poison) if not item.accepted_invalid_paths & listed] == []
    again = gtui(town, "plugin", "list", "--json", timeout=GTUI_TIMEOUT)
    assert again.code == 0 and sorted(p["name"] for p in again.json()["plugins"]) == sorted(RUN_BY_THEMSELVES + MANUAL_ONLY)


# -- (d) discover() in-process ------------------------------------------------------------


def test_discover_in_process_reports_the_poison_like_the_command_line(tmp_path: Path) -> None:
    town, poison, valid = poisoned_town(tmp_path)
    found = discover_within(town)

    for bad in found.invalid:
        assert_one_line_reason(bad.error, bad.path)
        assert bad.line is None or (type(bad.line) is int and bad.line >= 1), bad
    invalid_paths = {bad.path for bad in found.invalid}
    assert unreported(poison, invalid_paths, found.warnings) == []
    assert sorted(plugin.name for plugin in found.plugins) == sorted(valid)
    winner, shadowed = shadow_paths(town)
    shadow = found.get(SHADOW)
    assert shadow is not None and (shadow.path, shadow.shadowed) == (winner, (shadowed,))

    valid_paths = {plugin.path for plugin in found.plugins} | {path for plugin in found.plugins for path in plugin.shadowed}
    assert vanished(town, valid_paths, invalid_paths, found.warnings) == []
    assert_named_reasons(poison, {bad.path: bad.error for bad in found.invalid})

    listing = gtui(town, "plugin", "list", "--json", timeout=GTUI_TIMEOUT).json()
    assert sorted(item["path"] for item in listing["invalid"]) == sorted(str(path) for path in invalid_paths)
    assert sorted(listing["warnings"]) == sorted(found.warnings)
    assert [item["name"] for item in listing["plugins"]] == [plugin.name for plugin in found.plugins]


# -- each kind alone ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_poison_kind_alone_is_reported_and_costs_only_itself(tmp_path: Path, kind: str) -> None:
    """The same contract one kind at a time, so a failure names the kind instead of drowning in the full corpus."""
    town = make_town(tmp_path / "town")
    valid = valid_plugins(town)
    poison = build_one(town, kind, KINDS.index(kind))
    found = discover_within(town)

    invalid_paths = {bad.path for bad in found.invalid}
    assert unreported(poison, invalid_paths, found.warnings) == []
    for bad in found.invalid:
        assert_one_line_reason(bad.error, bad.path)
        assert bad.line is None or (type(bad.line) is int and bad.line >= 1), bad
    assert sorted(plugin.name for plugin in found.plugins) == sorted(valid)
    valid_paths = {plugin.path for plugin in found.plugins} | {path for plugin in found.plugins for path in plugin.shadowed}
    assert vanished(town, valid_paths, invalid_paths, found.warnings) == []
    assert_named_reasons(poison, {bad.path: bad.error for bad in found.invalid})


@pytest.mark.skipif(ROOT_CAN_READ_ANYTHING, reason="running as root: chmod 0 does not make a file unreadable for root")
def test_an_unreadable_plugin_md_is_reported(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    (poison,) = build_one(town, "unreadable-plugin-md")
    found = discover_within(town)
    assert unreported([poison], {bad.path for bad in found.invalid}, found.warnings) == []
