"""The kennel's kept scan (gtcore.plugins.scan_keeper): real files, real inotify; whatever changes what a scan would find is seen
by the next command, an unchanged town is answered without scanning, and what cannot be watched is scanned every time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from enginekit import add_plugin, gtui, gtui_env, make_town
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kennelkit import kennel_pids

from gtcore.core.errors import GtError
from gtcore.plugins.cache import Identity, PluginCache
from gtcore.plugins.discovery import PluginSet, discover
from gtcore.plugins.scan_keeper import ScanKeeper
from gtcore.plugins.spec import InvalidPlugin, Plugin
from gtcore.town.layout import Town

ROOT = Path(__file__).resolve().parents[1]
MANUAL = '[gate]\ntype = "manual"'
MANUAL_GATE = 'type = "manual"'


def write_plugin(directory: Path, gate: str = MANUAL, *, run_sh: bool = True, name: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.md").write_text(f'+++\nname = "{name or directory.name}"\n{gate}\n+++\nDo it.\n', encoding="utf-8")
    if run_sh:
        (directory / "run.sh").write_text("true\n", encoding="utf-8")
    return directory


def seen(scan: PluginSet) -> tuple[object, ...]:
    """All a scan says: each plugin as parsed (its file, gate, run.sh, shadowed copies, mtime), invalid files, warnings."""
    return tuple(scan.plugins), tuple(scan.invalid), tuple(scan.warnings)


def fresh(town: Path) -> tuple[object, ...]:
    return seen(discover(Town(town)))


def warm(keeper: ScanKeeper, town: Path) -> None:
    """Scans until the keeper keeps one (the first scan adds the watches it needs, so the second is the one kept)."""
    keeper.plugins(Town(town))
    keeper.plugins(Town(town))
    scans = keeper.scans
    assert seen(keeper.plugins(Town(town))) == fresh(town)
    assert keeper.scans == scans, "the town did not change: its kept scan answers"


@pytest.fixture
def keeper() -> Iterator[ScanKeeper]:
    keeper = ScanKeeper()
    yield keeper
    keeper.close()


@pytest.fixture
def town(tmp_path: Path) -> Path:
    """Plugins at the town level and in a rig, one in a crew clone, one with no run.sh; a clone with no plugins, a
    mayor with no rig registry."""
    root = tmp_path / "town"
    (root / "mayor").mkdir(parents=True)
    (root / "mayor" / "town.json").write_text("{}", encoding="utf-8")
    (root / "rig1" / "crew" / "carol").mkdir(parents=True)
    write_plugin(root / "plugins" / "alpha")
    write_plugin(root / "plugins" / "beta", run_sh=False)
    write_plugin(root / "rig1" / "plugins" / "gamma")
    write_plugin(root / "rig1" / "crew" / "bob" / "plugins" / "delta")
    return root


def test_an_unchanged_town_is_answered_without_scanning(keeper: ScanKeeper, town: Path) -> None:
    warm(keeper, town)
    scans = keeper.scans
    for _ in range(5):
        assert seen(keeper.plugins(Town(town))) == fresh(town)
    assert keeper.scans == scans


def test_files_no_scan_reads_may_change_without_a_scan(keeper: ScanKeeper, town: Path) -> None:
    """A plugin's own state beside its plugin.md, an editor's dot-file, a rig's other directories: no scan reads them."""
    warm(keeper, town)
    scans = keeper.scans
    (town / "plugins" / "alpha" / "state.json").write_text("{}", encoding="utf-8")
    (town / "plugins" / ".plugin.md.swp").write_text("x", encoding="utf-8")
    (town / "rig1" / "polecats").mkdir()
    (town / "rig1" / "crew" / "bob" / "README").write_text("x", encoding="utf-8")
    assert seen(keeper.plugins(Town(town))) == fresh(town)
    assert keeper.scans == scans


def rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def replace_by_rename(path: Path, old: str, new: str) -> None:
    """An editor's atomic save: a new file renamed over the old one (a new inode)."""
    temp = path.with_name(".save")
    temp.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    os.replace(temp, path)


def same_size_edit(town: Path) -> None:
    """New words of the same length, the old mtime put back: the file's size and times say nothing changed."""
    manifest = town / "plugins" / "alpha" / "plugin.md"
    before = manifest.stat()
    rewrite(manifest, "Do it.", "Do so.")
    os.utime(manifest, ns=(before.st_atime_ns, before.st_mtime_ns))


def registry(town: Path, rigs: list[str]) -> None:
    (town / "mayor").mkdir(exist_ok=True)
    (town / "mayor" / "rigs.json").write_text(json.dumps({"rigs": {rig: {} for rig in rigs}}), encoding="utf-8")


EDITS: dict[str, Callable[[Path], object]] = {
    "plugin.md edited": lambda town: rewrite(town / "plugins" / "alpha" / "plugin.md", "manual", "cooldown\"\nduration = \"1h"),
    "plugin.md edited, same size": same_size_edit,
    "plugin.md touched": lambda town: os.utime(town / "plugins" / "alpha" / "plugin.md", ns=(1, 1)),
    "plugin.md saved by rename": lambda town: replace_by_rename(town / "plugins" / "alpha" / "plugin.md", "Do it", "Do that"),
    "plugin.md made invalid": lambda town: rewrite(town / "rig1" / "plugins" / "gamma" / "plugin.md", "manual", "nonsense"),
    "run.sh added": lambda town: (town / "plugins" / "beta" / "run.sh").write_text("true\n", encoding="utf-8"),
    "run.sh removed": lambda town: (town / "plugins" / "alpha" / "run.sh").unlink(),
    "run.sh made a directory": lambda town: ((town / "plugins" / "alpha" / "run.sh").unlink(),
                                             (town / "plugins" / "alpha" / "run.sh").mkdir()),
    "new plugin": lambda town: write_plugin(town / "plugins" / "epsilon"),
    "new plugin in the crew clone": lambda town: write_plugin(town / "rig1" / "crew" / "bob" / "plugins" / "zeta"),
    "plugin removed": lambda town: shutil.rmtree(town / "rig1" / "plugins" / "gamma"),
    "plugin renamed": lambda town: (town / "plugins" / "alpha").rename(town / "plugins" / "omega"),
    "plugin moved to a rig": lambda town: (town / "plugins" / "alpha").rename(town / "rig1" / "plugins" / "alpha"),
    "new rig": lambda town: write_plugin(town / "rig2" / "plugins" / "eta"),
    "new crew clone": lambda town: write_plugin(town / "rig1" / "crew" / "dave" / "plugins" / "theta"),
    "plugins in a crew clone": lambda town: write_plugin(town / "rig1" / "crew" / "carol" / "plugins" / "theta"),
    "rig removed": lambda town: shutil.rmtree(town / "rig1"),
    "stray file": lambda town: (town / "plugins" / "notes.txt").write_text("x", encoding="utf-8"),
    "a plugin's plugin.md removed": lambda town: (town / "plugins" / "alpha" / "plugin.md").unlink(),
    "a registry naming one rig": lambda town: (write_plugin(town / "rig2" / "plugins" / "eta"), registry(town, ["rig2"])),
    "a registry naming none": lambda town: registry(town, []),
    "a rig's plugins directory renamed": lambda town: (town / "rig1" / "plugins").rename(town / "rig1" / "plugins.off"),
}


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_a_change_is_seen_by_the_next_command(keeper: ScanKeeper, town: Path, edit: str) -> None:
    warm(keeper, town)
    before = fresh(town)
    EDITS[edit](town)
    assert fresh(town) != before, "the edit changes what a scan finds"
    assert seen(keeper.plugins(Town(town))) == fresh(town)
    warm(keeper, town)  # and the town, changed, is kept again


def test_a_chmod_of_run_sh_is_a_change(keeper: ScanKeeper, town: Path) -> None:
    """Whether run.sh may be read decides how the plugin validates (root reads it anyway: the scan is made again)."""
    warm(keeper, town)
    scans = keeper.scans
    (town / "plugins" / "alpha" / "run.sh").chmod(0)
    assert seen(keeper.plugins(Town(town))) == fresh(town)
    assert keeper.scans == scans + 1


def test_a_registry_decides_the_rigs_and_its_edits_are_seen(keeper: ScanKeeper, town: Path) -> None:
    write_plugin(town / "rig2" / "plugins" / "eta")
    registry(town, ["rig1"])
    warm(keeper, town)
    scans = keeper.scans
    (town / "rig2" / "plugins" / "eta" / "plugin.md").unlink()  # not a rig of the registry: nothing a scan reads
    keeper.plugins(Town(town))
    assert keeper.scans == scans
    registry(town, ["rig1", "rig2"])
    assert seen(keeper.plugins(Town(town))) == fresh(town)
    write_plugin(town / "rig2" / "plugins" / "eta")
    assert seen(keeper.plugins(Town(town))) == fresh(town)


def test_an_edited_target_of_a_linked_plugin_md_is_seen(keeper: ScanKeeper, town: Path, tmp_path: Path) -> None:
    shared = write_plugin(tmp_path / "shared" / "iota")
    (town / "plugins" / "iota").mkdir()
    (town / "plugins" / "iota" / "plugin.md").symlink_to(shared / "plugin.md")
    warm(keeper, town)
    rewrite(shared / "plugin.md", "manual", "cooldown\"\nduration = \"2h")
    assert seen(keeper.plugins(Town(town))) == fresh(town)
    warm(keeper, town)
    replace_by_rename(shared / "plugin.md", "2h", "3h")  # the target itself replaced: its new file is watched in turn
    assert seen(keeper.plugins(Town(town))) == fresh(town)
    warm(keeper, town)
    rewrite(shared / "plugin.md", "3h", "4h")
    assert seen(keeper.plugins(Town(town))) == fresh(town)


def test_an_edited_linked_plugin_directory_is_seen(keeper: ScanKeeper, town: Path, tmp_path: Path) -> None:
    shared = write_plugin(tmp_path / "shared" / "kappa")
    (town / "plugins" / "kappa").symlink_to(shared)
    warm(keeper, town)
    (shared / "run.sh").unlink()
    assert seen(keeper.plugins(Town(town))) == fresh(town)


def test_a_dangling_link_is_scanned_every_time_until_its_target_appears(keeper: ScanKeeper, town: Path, tmp_path: Path) -> None:
    """Nothing can watch for a link's target to appear: a scan that met a dangling link is never kept."""
    (town / "plugins" / "lambda").mkdir()
    (town / "plugins" / "lambda" / "plugin.md").symlink_to(tmp_path / "elsewhere" / "plugin.md")
    keeper.plugins(Town(town))
    scans = keeper.scans
    for _ in range(3):
        assert seen(keeper.plugins(Town(town))) == fresh(town)
    assert keeper.scans == scans + 3
    write_plugin(tmp_path / "elsewhere")
    assert seen(keeper.plugins(Town(town))) == fresh(town)


def test_a_city_is_scanned_every_time(keeper: ScanKeeper, town: Path) -> None:
    """A city's orders depend on its settings and on files no watch covers."""
    (town / "city.toml").write_text('[workspace]\nname = "c"\n', encoding="utf-8")
    keeper.plugins(Town(town))
    scans = keeper.scans
    for _ in range(3):
        keeper.plugins(Town(town))
    assert keeper.scans == scans + 3


def test_a_town_becoming_a_city_is_seen(keeper: ScanKeeper, town: Path) -> None:
    warm(keeper, town)
    (town / "city.toml").write_text('[workspace]\nname = "c"\n', encoding="utf-8")
    scans = keeper.scans
    keeper.plugins(Town(town))
    assert keeper.scans == scans + 1


def test_another_town_is_never_answered_with_the_first_ones_scan(keeper: ScanKeeper, town: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_plugin(other / "plugins" / "mu")
    warm(keeper, town)
    assert seen(keeper.plugins(Town(other))) == fresh(other)
    assert seen(keeper.plugins(Town(town))) == fresh(town)


def test_a_caller_adding_to_its_scan_does_not_change_the_kept_one(keeper: ScanKeeper, town: Path) -> None:
    warm(keeper, town)
    keeper.plugins(Town(town)).warnings.append("the caller's own")
    assert seen(keeper.plugins(Town(town))) == fresh(town)


def test_a_scan_that_failed_leaves_no_kept_scan_behind(keeper: ScanKeeper, town: Path) -> None:
    registry(town, ["rig1"])
    warm(keeper, town)
    (town / "mayor" / "rigs.json").write_text("{", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(GtError, match="cannot read the rig list"):
            keeper.plugins(Town(town))


class EditingCache(PluginCache):
    """A cache that, once, edits a plugin.md right after the scan read it: a writer racing the scan, made certain."""

    def __init__(self, path: Path, victim: Path) -> None:
        super().__init__(path)
        self.victim: Path | None = victim

    def store(self, manifest: str, identity: Identity, parsed: Plugin | InvalidPlugin) -> None:
        if self.victim is not None and manifest == str(self.victim):
            rewrite(self.victim, "manual", "cooldown\"\nduration = \"5h")
            self.victim = None
        super().store(manifest, identity, parsed)


def test_a_scan_during_which_a_watch_was_added_is_not_kept(keeper: ScanKeeper, town: Path, tmp_path: Path) -> None:
    """A new plugin's directory is watched only after the scan read it: an edit in between is seen by no watch, so that
    scan is not kept; the next one is made after the watch is in place."""
    warm(keeper, town)
    new = write_plugin(town / "plugins" / "nu")
    keeper.plugins(Town(town), EditingCache(tmp_path / "cache", new / "plugin.md"))
    assert seen(keeper.plugins(Town(town))) == fresh(town)


def test_an_overflowing_queue_is_a_change(keeper: ScanKeeper, town: Path) -> None:
    """Events the kernel could not queue are lost: its overflow says something may have changed."""
    warm(keeper, town)
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    noise = [town / "plugins" / ".a", town / "plugins" / ".b"]  # dot-files: events no scan cares about
    for path in noise:
        path.write_text("", encoding="utf-8")
    for turn in range(limit + 2):
        os.utime(noise[turn % 2], ns=(turn, turn))  # alternate: the kernel merges an event equal to the last one queued
    rewrite(town / "plugins" / "alpha" / "plugin.md", "manual", "cooldown\"\nduration = \"6h")  # its event is lost
    assert seen(keeper.plugins(Town(town))) == fresh(town)


UNWATCHED = """
import resource, sys
from pathlib import Path
from gtcore.plugins.scan_keeper import ScanKeeper
from gtcore.town.layout import Town
import os
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(int(fd) for fd in os.listdir("/proc/self/fd")) + 1, hard))
filled = []
try:
    while True:
        filled.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
keeper = ScanKeeper()  # no descriptor left: no inotify instance
for fd in filled:
    os.close(fd)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
for _ in range(4):
    keeper.plugins(Town(Path(sys.argv[1])))
print(keeper.scans)
"""


def test_without_inotify_every_command_scans(town: Path) -> None:
    """No inotify instance to be had (here: no file descriptor left when the keeper was made): nothing is kept."""
    shown = subprocess.run([sys.executable, "-c", UNWATCHED, str(town)], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert shown.stdout.split() == ["4"]


def kernel_watches(pid: int | str = "self") -> int:
    """How many inotify watches a process holds (the kernel lists each in its descriptor's fdinfo)."""
    counted = 0
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        with contextlib.suppress(FileNotFoundError):  # the descriptor that lists them is closed once listed
            counted += info.read_text().count("inotify wd:")
    return counted


def test_what_no_scan_reads_any_more_is_not_watched(keeper: ScanKeeper, town: Path, tmp_path: Path) -> None:
    """A plugin moved out of the town lives on elsewhere: its watches go, or every move would leave some behind."""
    warm(keeper, town)
    (town / "plugins" / "alpha").rename(tmp_path / "alpha")
    warm(keeper, town)
    held = kernel_watches()
    keeper.close()
    assert kernel_watches() == 0
    again = ScanKeeper()
    warm(again, town)
    assert held == kernel_watches()
    again.close()


def test_a_closed_keeper_scans_every_time(keeper: ScanKeeper, town: Path) -> None:
    warm(keeper, town)
    keeper.close()
    scans = keeper.scans
    keeper.plugins(Town(town))
    keeper.plugins(Town(town))
    assert keeper.scans == scans + 2


# -- any sequence of changes ----------------------------------------------------------------------------------------

PLACES = ["plugins", "rig1/plugins", "rig1/crew/bob/plugins", "rig2/plugins"]
NAMES = ["p", "q", "r"]


def _operate(town: Path, outside: Path, operation: tuple[str, str, str]) -> None:
    kind, place, name = operation
    directory = town / place / name
    manifest = directory / "plugin.md"
    if kind == "add":
        write_plugin(directory)  # the same names in several places: some shadow others
    elif kind == "edit" and manifest.is_file():
        rewrite(manifest, "manual", "cooldown\"\nduration = \"1h")
    elif kind == "break" and manifest.is_file():
        rewrite(manifest, "+++\nname", "+++\nname = 1\nnom")
    elif kind == "touch" and manifest.exists():
        os.utime(manifest, ns=(5, 5))
    elif kind == "run.sh" and directory.is_dir():
        run_sh = directory / "run.sh"
        run_sh.unlink() if run_sh.exists() else run_sh.write_text("true\n", encoding="utf-8")
    elif kind == "remove" and directory.is_symlink():
        directory.unlink()
    elif kind == "remove" and directory.exists():
        shutil.rmtree(directory)
    elif kind == "rename" and directory.is_dir() and not (directory.parent / f"{name}x").exists():
        directory.rename(directory.parent / f"{name}x")
    elif kind == "link" and not directory.exists():
        write_plugin(outside / place.replace("/", "_") / name)
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.symlink_to(outside / place.replace("/", "_") / name)
    elif kind == "edit target":
        for target in outside.glob("*/*/plugin.md"):
            rewrite(target, "manual", "cooldown\"\nduration = \"9h")
    elif kind == "drop place":
        shutil.rmtree(town / place, ignore_errors=True)


OPERATIONS = st.tuples(st.sampled_from(["add", "add", "edit", "break", "touch", "run.sh", "remove", "rename", "link", "edit target",
                                        "drop place"]), st.sampled_from(PLACES), st.sampled_from(NAMES))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(OPERATIONS, st.integers(0, 2)), max_size=12))
def test_any_sequence_of_changes_is_answered_as_a_fresh_scan(tmp_path_factory: pytest.TempPathFactory,
                                                             steps: list[tuple[tuple[str, str, str], int]]) -> None:
    base = tmp_path_factory.mktemp("seq")
    town, outside = base / "town", base / "outside"
    write_plugin(town / "plugins" / "p")
    keeper = ScanKeeper()
    try:
        for operation, asks in steps:
            _operate(town, outside, operation)
            for _ in range(asks):
                assert seen(keeper.plugins(Town(town))) == fresh(town)
        assert seen(keeper.plugins(Town(town))) == fresh(town)
    finally:
        keeper.close()


# -- through the command line and the kennel -----------------------------------------------------------------------


def listed(capsys: pytest.CaptureFixture[str], town: Path, keeper: ScanKeeper, *line: str) -> dict[str, object]:
    from gtui.cli import main

    assert main([*line, "--json", "--town", str(town)], release=True, scans=keeper) in (0, 1)
    return json.loads(capsys.readouterr().out)


def test_the_commands_engines_share_the_kept_scan(keeper: ScanKeeper, town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``plugin list`` (a read-only engine) and ``--once`` (a writing one) both take the keeper's scan."""
    make_town(town)
    for _ in range(2):
        listed(capsys, town, keeper, "plugin", "list")
    scans = keeper.scans
    assert scans == 2  # the first scan watched the town, the second was made under its watches and kept
    first = listed(capsys, town, keeper, "plugin", "list")
    once = listed(capsys, town, keeper, "--once")
    assert keeper.scans == scans
    assert len(first["plugins"]) == 4 and len(once["plugins"]) == 4  # type: ignore[arg-type]
    write_plugin(town / "plugins" / "xi")
    assert len(listed(capsys, town, keeper, "plugin", "list")["plugins"]) == 5  # type: ignore[arg-type]
    assert len(listed(capsys, town, keeper, "--once")["plugins"]) == 5  # type: ignore[arg-type]


def test_the_kennel_answers_from_its_kept_scan_and_sees_every_change(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "omicron", MANUAL_GATE)
    gtui(town, "plugin", "run", "omicron", env={**gtui_env(), "GTUI_THIN": "off"})  # starts the town's kennel
    (pid,) = kennel_pids(town)
    thin = {**gtui_env(), "GTUI_THIN": "require"}

    def names() -> list[tuple[str, str]]:
        """Each plugin the kennel lists: its name and its directory's."""
        answer = gtui(town, "plugin", "list", "--json", env=thin)
        assert answer.code == 0, answer.err
        return [(plugin["name"], Path(plugin["path"]).parent.name) for plugin in json.loads(answer.out)["plugins"]]

    assert names() == names() == [("omicron", "omicron")]
    assert kernel_watches(pid) > 0  # the answers' keeper watches the town
    add_plugin(town, "pi", MANUAL_GATE)
    assert names() == [("omicron", "omicron"), ("pi", "pi")]
    (town / "plugins" / "pi").rename(town / "plugins" / "rho")
    assert names() == [("omicron", "omicron"), ("pi", "rho")]
    rewrite(town / "plugins" / "rho" / "plugin.md", 'name = "pi"', 'name = "sigma"')
    assert names() == [("omicron", "omicron"), ("sigma", "rho")]
