"""A ``run.sh`` that is not a regular file gtui may read makes its plugin invalid, with the reason; it never runs.

Only a plugin with no ``run.sh`` at all (or ``[execution] type = "agent"``) is an
agent plugin: a deploy caught half done (``run.sh`` a link to a release not yet
unpacked) must never send the plugin's markdown to an agent, nor be recorded as
a run.  Everything here is real: symlinks, FIFOs, device nodes made with
``mknod``, directories, ``gtui`` processes, and a second user (``setpriv``) for
the permissions root does not have to respect.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from enginekit import add_plugin, gtui, gtui_argv, gtui_env, make_town, runs

from gtcore.plugins.spec import InvalidPlugin, Plugin, parse_plugin

HOUR_AGO = 3600.0
NOBODY = 65534

DANGLING = "run.sh is a symbolic link to a path that does not exist"
LOOP = "run.sh is a symbolic link loop"
DIRECTORY = "run.sh is a directory, not a regular file"
FIFO = "run.sh is a FIFO, not a regular file"
CHAR_DEVICE = "run.sh is a character device, not a regular file"
SOCKET = "run.sh is a socket, not a regular file"
UNREADABLE = "run.sh cannot be read (its permissions)"


def dangling(script: Path) -> None:
    """A link into a release that is not there (yet): what a deploy by symlink looks like half done."""
    script.symlink_to("releases/next/run.sh")


def looping(script: Path) -> None:
    """Two links pointing at each other: following them never ends (ELOOP)."""
    (script.parent / "other.sh").symlink_to("run.sh")
    script.symlink_to("other.sh")


def directory(script: Path) -> None:
    script.mkdir()


def fifo(script: Path) -> None:
    """A FIFO: opening it to read would block until someone writes, so it must not even be opened."""
    os.mkfifo(script)


def link_to_dev_null(script: Path) -> None:
    script.symlink_to("/dev/null")


def char_device(script: Path) -> None:
    """A real character device node (the same numbers as /dev/null), made with mknod."""
    os.mknod(script, stat.S_IFCHR | 0o644, os.makedev(1, 3))


def unix_socket(script: Path) -> None:
    os.mknod(script, stat.S_IFSOCK | 0o644)


NOT_A_SCRIPT: dict[str, tuple[Callable[[Path], None], str]] = {
    "dangling": (dangling, DANGLING),
    "looping": (looping, LOOP),
    "directory": (directory, DIRECTORY),
    "fifo": (fifo, FIFO),
    "dev-null": (link_to_dev_null, CHAR_DEVICE),
    "char-device": (char_device, CHAR_DEVICE),
    "socket": (unix_socket, SOCKET),
}
"""Plugin name -> how its run.sh is made, and the reason gtui must give."""


def settle(path: Path) -> None:
    """Date a file an hour back: the plugin cache keeps only files that settled (see gtcore.town.document_cache.settled)."""
    os.utime(path, (os.stat(path).st_mtime - HOUR_AGO,) * 2)


def reasons(payload: dict[str, Any]) -> dict[str, str]:
    """The invalid plugins of a ``--json`` answer, by the name of their directory, with their reason."""
    return {Path(item["path"]).parent.name: item["error"] for item in payload["invalid"]}


def by_name(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in entries}


@pytest.fixture
def broken_town(tmp_path: Path) -> Path:
    """A town where every kind of run.sh that cannot be run sits beside a script plugin and two agent plugins that can."""
    town = make_town(tmp_path / "town")
    for name, (make, _) in NOT_A_SCRIPT.items():
        make(add_plugin(town, name, run_sh=None) / "run.sh")
    add_plugin(town, "script", run_sh="echo script ran\n")
    add_plugin(town, "agent", run_sh=None)  # no run.sh at all: an agent plugin
    add_plugin(town, "told-agent", run_sh="echo never run as a script\n", execution='type = "agent"')
    return town


# -- every kind, through the real command ----------------------------------------------------------------


def test_a_run_sh_that_is_no_regular_file_makes_the_plugin_invalid_and_the_others_still_run(broken_town: Path) -> None:
    expected = {name: reason for name, (_, reason) in NOT_A_SCRIPT.items()}

    listing = gtui(broken_town, "plugin", "list", "--json")
    assert listing.code == 0, listing.err
    assert reasons(listing.json()) == expected
    plugins = by_name(listing.json()["plugins"])
    assert set(plugins) == {"script", "agent", "told-agent"}
    assert (plugins["script"]["execution"]["type"], plugins["script"]["has_run_script"]) == ("script", True)
    assert (plugins["agent"]["execution"]["type"], plugins["agent"]["has_run_script"]) == ("agent", False)
    assert plugins["told-agent"]["execution"]["type"] == "agent"

    patrol = gtui(broken_town, "--once", "--wait", "--json")
    assert "Traceback" not in patrol.err
    report = patrol.json()
    assert reasons(report) == expected
    entries = by_name(report["plugins"])
    assert set(entries) == {"script", "agent", "told-agent"}  # the invalid ones are not patrolled, the others are
    assert entries["script"]["dispatched"] and entries["script"]["run"]["result"] == "success"
    assert entries["agent"]["run"]["result"] == "skipped"  # an agent plugin, and no agent is configured
    assert entries["told-agent"]["run"]["result"] == "skipped"
    for name in NOT_A_SCRIPT:
        assert runs(broken_town, name) == [], name  # never run, never recorded


def test_a_plugin_with_a_broken_run_sh_cannot_be_run_by_hand_either(broken_town: Path) -> None:
    for name in ("dangling", "fifo"):
        for args in (("plugin", "run", name), ("dog", "dispatch", "--plugin", name)):
            refused = gtui(broken_town, *args)
            assert refused.code == 2 and refused.err.startswith("gtui: error: ") and len(refused.err.splitlines()) == 1, refused
        assert runs(broken_town, name) == []


@pytest.mark.parametrize("name", NOT_A_SCRIPT)
def test_parse_plugin_looks_at_run_sh_itself_when_no_scan_did(tmp_path: Path, name: str) -> None:
    """``parse_plugin`` without the scan's verdict (a single file reloaded, the TUI's editor) reaches the same reason."""
    make, reason = NOT_A_SCRIPT[name]
    plugin_dir = add_plugin(make_town(tmp_path / "town"), name, run_sh=None)
    make(plugin_dir / "run.sh")
    parsed = parse_plugin(plugin_dir / "plugin.md")
    assert isinstance(parsed, InvalidPlugin) and parsed.error == reason


def test_only_a_missing_run_sh_or_type_agent_makes_an_agent_plugin(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    missing = parse_plugin(add_plugin(town, "missing", run_sh=None) / "plugin.md")
    told = parse_plugin(add_plugin(town, "told", execution='type = "agent"') / "plugin.md")
    told_but_dangling = add_plugin(town, "told-dangling", run_sh=None, execution='type = "agent"')
    dangling(told_but_dangling / "run.sh")
    assert isinstance(missing, Plugin) and missing.execution.type == "agent" and not missing.has_run_script
    assert isinstance(told, Plugin) and told.execution.type == "agent"
    # Told it is an agent's, but run.sh is a deploy caught half done: said, not guessed past.
    assert parse_plugin(told_but_dangling / "plugin.md") == InvalidPlugin(told_but_dangling / "plugin.md", DANGLING)


# -- permissions: root reads anything, another user does not ---------------------------------------------


def test_as_root_a_mode_000_run_sh_is_readable_and_runs(tmp_path: Path) -> None:
    """Root's reads ignore the mode bits, and so does bash run by root: the plugin is fine, and runs."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    town = make_town(tmp_path / "town")
    (add_plugin(town, "locked", run_sh="echo read anyway\n") / "run.sh").chmod(0)
    done = gtui(town, "plugin", "run", "locked", "--json")
    assert done.code == 0, done.err
    assert done.json()["result"] == "success"


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's own are 0700), removed afterwards."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run gtui as another user")
    path = Path(tempfile.mkdtemp(prefix="gtui-run-sh-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_run_sh_its_user_cannot_read_makes_the_plugin_invalid(world_readable_dir: Path) -> None:
    town = make_town(world_readable_dir / "town")
    own_but_000 = add_plugin(town, "own-000") / "run.sh"
    os.chown(own_but_000, NOBODY, NOBODY)
    own_but_000.chmod(0)
    (add_plugin(town, "roots-only") / "run.sh").chmod(0o600)  # root's, and only root may read it
    add_plugin(town, "readable")
    for path in town.rglob("*"):
        if path.name != "run.sh":
            path.chmod(0o755 if path.is_dir() else 0o644)
    town.chmod(0o755)

    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    done = subprocess.run([*as_nobody, *gtui_argv(town, "plugin", "list", "--json")], capture_output=True, text=True,
                          env=gtui_env(), timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    listing = json.loads(done.stdout)
    assert reasons(listing) == {"own-000": UNREADABLE, "roots-only": UNREADABLE}
    assert [plugin["name"] for plugin in listing["plugins"]] == ["readable"]


# -- the plugin cache: a run.sh that changes under an unchanged plugin.md --------------------------------


def test_a_run_sh_that_turns_dangling_after_a_scan_is_invalid_on_the_next(tmp_path: Path) -> None:
    """The cache keys a plugin.md by its identity *and* by what its run.sh is: a deploy swapping run.sh for a link to a
    release not unpacked yet leaves plugin.md byte for byte the same, and must still be seen at the next scan."""
    town = make_town(tmp_path / "town")
    plugin_dir = add_plugin(town, "deployed", run_sh="echo v1\n")
    manifest = plugin_dir / "plugin.md"
    settle(manifest)

    first = gtui(town, "plugin", "list", "--json")
    assert [plugin["name"] for plugin in first.json()["plugins"]] == ["deployed"] and first.json()["invalid"] == []
    cached = marshal.loads((town / ".gtui" / "plugins.cache").read_bytes())["plugins"]
    assert str(manifest) in cached  # the next scan could answer from the cache: it must not

    swap = plugin_dir / ".run.sh.new"
    dangling(swap)
    os.replace(swap, plugin_dir / "run.sh")  # atomically, as a deploy does
    half_done = gtui(town, "plugin", "list", "--json").json()
    assert half_done["plugins"] == [] and reasons(half_done) == {"deployed": DANGLING}
    patrol = gtui(town, "--once", "--wait", "--json").json()
    assert patrol["plugins"] == [] and reasons(patrol) == {"deployed": DANGLING}
    assert runs(town, "deployed") == []

    (plugin_dir / "run.sh").unlink()
    directory(plugin_dir / "run.sh")  # still invalid, for another reason: the cache must not keep the first
    assert reasons(gtui(town, "plugin", "list", "--json").json()) == {"deployed": DIRECTORY}

    (plugin_dir / "run.sh").rmdir()
    (plugin_dir / "releases" / "next").mkdir(parents=True)
    (plugin_dir / "releases" / "next" / "run.sh").write_text("echo v2\n", encoding="utf-8")
    dangling(plugin_dir / "run.sh")  # the same link, its release now unpacked: the deploy is done
    done = gtui(town, "plugin", "list", "--json").json()
    assert done["invalid"] == [] and by_name(done["plugins"])["deployed"]["execution"]["type"] == "script"
    ran = gtui(town, "plugin", "run", "deployed", "--json")
    assert ran.code == 0 and ran.json()["result"] == "success", ran.err
    assert gtui(town, "plugin", "log", "deployed").out == "v2\n"
