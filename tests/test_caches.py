"""The caches that make an idle command cheap are only caches: what they hold is always what the files say.

``.gtui/plugins.cache`` (parsed plugins, cron slots) and ``.gtui/settings.cache``
(the parsed gtui.toml): deleting them changes nothing but speed, a damaged or
foreign one is ignored and rebuilt, an edited file is parsed again, and a file
changed within the last seconds is never cached by its identity (a rewrite in
the same timestamp tick, at the same size, would otherwise go unseen).  And
the commands people and the Deacon run all day import only what they use.
"""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from enginekit import add_plugin, gtui, gtui_env, make_town

from gtcore.gates import rules as gates
from gtcore.plugins.cache import FORMAT, PluginCache
from gtcore.plugins.discovery import discover
from gtcore.town import document_cache
from gtcore.town.layout import Town
from gtcore.town.settings import load_settings

HOUR_AGO = time.time() - 3600


def settle(root: Path, at: float = HOUR_AGO) -> None:
    """Date every file of the town back, as a town's files are: the caches keep only settled files."""
    for directory, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(directory, name), (at, at))


def listing(root: Path, cache: PluginCache | None) -> list[tuple[object, ...]]:
    found = discover(Town(root), cache)
    return [tuple(plugin) for plugin in found.plugins] + [tuple(bad) for bad in found.invalid]


def cache_of(root: Path) -> PluginCache:
    return PluginCache(root / ".gtui" / "plugins.cache")


@pytest.fixture
def town(tmp_path: Path) -> Path:
    root = make_town(tmp_path / "town")
    add_plugin(root, "hourly", gate='type = "cooldown"\nduration = "1h"')
    add_plugin(root, "nightly", gate='type = "cron"\nschedule = "0 3 * * *"')
    add_plugin(root, "asked", gate='type = "manual"', run_sh=None, execution='type = "agent"')
    broken = root / "plugins" / "broken"
    broken.mkdir()
    (broken / "plugin.md").write_text('+++\nname = "broken"\n[gate]\ntype = "sometimes"\n+++\n', encoding="utf-8")
    settle(root)
    return root


def test_a_cached_plugin_is_the_parsed_plugin(town: Path) -> None:
    truth = listing(town, None)
    first = cache_of(town)
    assert listing(town, first) == truth
    first.save()
    assert (town / ".gtui" / "plugins.cache").is_file()
    assert listing(town, cache_of(town)) == truth  # from the file, as the next process sees it


@pytest.mark.parametrize("damage", [b"", b"\x00garbage\xff" * 40, marshal.dumps({"format": 999}), marshal.dumps([1, 2, 3]),
                                    marshal.dumps({"format": FORMAT, "gtui": "0.1.0", "plugins": {"x": "not a record"}, "parts": [],
                                                   "slots": {}})],
                         ids=["empty", "garbage", "foreign format", "not a mapping", "damaged entries"])
def test_a_damaged_cache_is_ignored_and_rebuilt(town: Path, damage: bytes) -> None:
    truth = listing(town, None)
    path = town / ".gtui" / "plugins.cache"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(damage)
    cache = cache_of(town)
    assert listing(town, cache) == truth
    cache.save()
    assert listing(town, cache_of(town)) == truth
    assert marshal.loads(path.read_bytes())["format"] == FORMAT  # rebuilt, readable


def test_deleting_the_cache_changes_nothing_but_speed(town: Path) -> None:
    cache = cache_of(town)
    truth = listing(town, cache)
    cache.save()
    (town / ".gtui" / "plugins.cache").unlink()
    assert listing(town, cache_of(town)) == truth


def test_an_edited_plugin_is_parsed_again(town: Path) -> None:
    cache = cache_of(town)
    listing(town, cache)
    cache.save()
    manifest = town / "plugins" / "hourly" / "plugin.md"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace('"1h"', '"2h"'), encoding="utf-8")
    settle(town, HOUR_AGO + 60)  # a new mtime, settled
    found = discover(Town(town), cache_of(town)).get("hourly")
    assert found is not None and found.gate.duration is not None and found.gate.duration.text == "2h"


def test_a_file_replaced_at_the_same_size_and_mtime_is_seen_by_its_inode(town: Path) -> None:
    cache = cache_of(town)
    listing(town, cache)
    cache.save()
    manifest = town / "plugins" / "hourly" / "plugin.md"
    before = os.stat(manifest)
    replacement = manifest.with_name("plugin.md.new")
    replacement.write_text(manifest.read_text(encoding="utf-8").replace('"1h"', '"3h"'), encoding="utf-8")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, manifest)  # what an editor's atomic save, or rsync -t, does
    assert os.stat(manifest).st_size == before.st_size and os.stat(manifest).st_mtime_ns == before.st_mtime_ns
    found = discover(Town(town), cache_of(town)).get("hourly")
    assert found is not None and found.gate.duration is not None and found.gate.duration.text == "3h"


def test_adding_run_sh_changes_how_the_plugin_validates(town: Path) -> None:
    cache = cache_of(town)
    assert discover(Town(town), cache).get("asked") is not None
    cache.save()
    script = town / "plugins" / "asked" / "run.sh"
    script.write_text("echo hi\n", encoding="utf-8")
    settle(town)
    found = discover(Town(town), cache_of(town)).get("asked")
    assert found is not None and found.has_run_script


def test_a_file_changed_seconds_ago_is_never_cached_by_its_identity(town: Path) -> None:
    """A rewrite in the same timestamp tick at the same size keeps size, mtime and inode: only not caching it helps.

    The guard: remove the ``settled`` check from PluginCache.store and this goes red.
    """
    manifest = town / "plugins" / "hourly" / "plugin.md"
    manifest.write_text(manifest.read_text(encoding="utf-8"), encoding="utf-8")  # just now
    cache = cache_of(town)
    listing(town, cache)
    cache.save()
    stamp = os.stat(manifest)
    with open(manifest, "r+", encoding="utf-8") as handle:  # in place: same inode
        text = handle.read()
        handle.seek(0)
        handle.write(text.replace('"1h"', '"4h"'))
    os.utime(manifest, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the same tick
    found = discover(Town(town), cache_of(town)).get("hourly")
    assert found is not None and found.gate.duration is not None and found.gate.duration.text == "4h"


def test_cron_slots_are_kept_for_the_next_process(town: Path) -> None:
    gates.SLOTS.clear()
    cache = cache_of(town)
    plugin = discover(Town(town), cache).get("nightly")
    assert plugin is not None
    decision = gates.evaluate(plugin, gates.GateFacts(), {}, time.time())
    cache.save()
    gates.SLOTS.clear()
    cache_of(town)  # loading puts them back
    assert gates.SLOTS and next(iter(gates.SLOTS.values()))[0] == decision.next_open_at


# -- settings -------------------------------------------------------------------------------------------


def test_the_settings_cache_answers_what_the_file_says(tmp_path: Path) -> None:
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    toml = settings_dir / "gtui.toml"
    cache = tmp_path / ".gtui" / "settings.cache"
    toml.write_text("dogs = 3\n", encoding="utf-8")
    os.utime(toml, (HOUR_AGO, HOUR_AGO))
    assert load_settings(settings_dir, cache).dogs == 3
    assert cache.is_file()
    assert load_settings(settings_dir, cache).dogs == 3
    toml.write_text("dogs = 5\n", encoding="utf-8")
    os.utime(toml, (HOUR_AGO + 60, HOUR_AGO + 60))
    assert load_settings(settings_dir, cache).dogs == 5
    cache.write_bytes(b"\x00not marshal")
    assert load_settings(settings_dir, cache).dogs == 5
    toml.unlink()
    assert load_settings(settings_dir, cache).dogs == 4  # no file: defaults, whatever the cache holds


def test_settings_changed_seconds_ago_are_parsed_every_time(tmp_path: Path) -> None:
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    toml = settings_dir / "gtui.toml"
    cache = tmp_path / ".gtui" / "settings.cache"
    toml.write_text("dogs = 3\n", encoding="utf-8")
    stamp = os.stat(toml)
    assert load_settings(settings_dir, cache).dogs == 3
    toml.write_text("dogs = 6\n", encoding="utf-8")  # same size, same inode
    os.utime(toml, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert load_settings(settings_dir, cache).dogs == 6
    assert not document_cache.settled(time.time_ns())


def test_a_read_only_command_writes_no_cache(town: Path) -> None:
    done = gtui(town, "--once", "--wait", "--json", "--read-only")
    assert done.code == 0, done.err
    assert not (town / ".gtui" / "plugins.cache").exists()
    assert not (town / ".gtui" / "settings.cache").exists()


# -- what the everyday commands import -------------------------------------------------------------------

NEVER_ON_JSON_PATHS = ("textual", "rich", "croniter", "dateutil", "frontmatter", "yaml", "tomllib", "smtplib", "email", "ssl",
                       "http", "urllib.request", "typing", "dataclasses", "zoneinfo", "concurrent", "gtcore.plugins.parse")

PROBE = """
import runpy, sys, io, contextlib, json
sys.argv = ["gtui", *json.loads(sys.argv[1])]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        runpy.run_module("gtui", run_name="__main__")
    except SystemExit:
        pass
sys.stderr.write(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("args", [["--once", "--wait", "--json"], ["plugin", "list", "--json"], ["escalate", "list", "--json"]],
                         ids=["once", "plugin list", "escalate list"])
def test_everyday_json_commands_import_only_what_they_use(town: Path, args: list[str]) -> None:
    """Textual and Rich never on a --json path, no parser for files that did not change, nothing to send mail."""
    (town / "plugins" / "broken").rename(town / "broken-aside")  # a clean town: an invalid file would be parsed each time
    assert gtui(town, "--once", "--wait", "--json").code == 0  # the first patrol fills the caches (and runs the open gates)
    settle(town)
    assert gtui(town, "--once", "--wait", "--json").code in (0, 1)
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(["--town", str(town), *args])],
                          capture_output=True, text=True, env=gtui_env(), timeout=60)
    modules = set(json.loads(done.stderr.strip().splitlines()[-1]))
    loaded = sorted(name for name in NEVER_ON_JSON_PATHS if name in modules or any(m.startswith(name + ".") for m in modules))
    assert loaded == [], f"{' '.join(args)} imported {loaded}"


def test_a_listing_keeps_the_caches_warm(town: Path) -> None:
    """``plugin list`` reads the ledger read-only, yet writes the parse caches: a town only ever listed stays fast."""
    assert gtui(town, "plugin", "list", "--json").code == 0
    assert (town / ".gtui" / "plugins.cache").is_file() and (town / ".gtui" / "settings.cache").is_file()
