"""A poison corpus: one town holding every kind of broken plugin we know, next to a few good ones.

Each broken entry is a :class:`Poison`: its kind, the path that must be reported and
how (an invalid plugin or a warning).  A town full of them must still list, patrol
and run its valid plugins: one bad file may only ever cost itself.

Kinds are spread over the three places plugins live: the town's ``plugins/``,
the rig ``alpha``'s ``plugins/`` and its crew clone ``alpha/crew/bob/plugins/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from enginekit import add_plugin

PLACES = ("plugins", "alpha/plugins", "alpha/crew/bob/plugins")
MIB = 1024 * 1024
MANUAL = 'type = "manual"'


@dataclass(frozen=True)
class Poison:
    """One malformed plugin entry and how discovery must report it.

    ``path`` is what must show up: ``<entry>/plugin.md`` for a broken file, the
    entry itself when there is no usable ``plugin.md`` to name.  ``either``
    marks kinds where the contract accepts an invalid entry or a warning.
    """

    name: str
    path: Path
    expect: Literal["invalid", "warning"]
    either: bool = False

    @property
    def entry(self) -> Path:
        """The directory entry directly under ``plugins/`` this poison lives in."""
        return self.path.parent if self.path.name == "plugin.md" else self.path

    @property
    def accepted_invalid_paths(self) -> set[Path]:
        """An InvalidPlugin may name the entry's plugin.md or the entry itself."""
        return {self.entry / "plugin.md", self.entry}


def frontmatter(toml: str, body: str = "Do the thing.\n") -> bytes:
    return f"+++\n{toml}\n+++\n{body}".encode()


def gate_doc(name: str, gate: str, extra: str = "") -> bytes:
    """A plugin.md that is fine except for whatever ``gate`` or ``extra`` breaks."""
    return frontmatter(f'name = "{name}"\n{extra}\n[gate]\n{gate}')


def manual_doc(name: str, section: str) -> bytes:
    """A manual plugin with one extra section (``[tracking]`` or ``[execution]``) to break."""
    return frontmatter(f'name = "{name}"\n[gate]\n{MANUAL}\n{section}')


# (kind, plugin.md bytes given the plugin's name); the name is the kind itself, which is a valid plugin name.
CONTENT: list[tuple[str, Callable[[str], bytes]]] = [
    ("missing-name", lambda _: frontmatter(f"[gate]\n{MANUAL}")),
    ("bad-name", lambda _: frontmatter(f'name = "Bad Name"\n[gate]\n{MANUAL}')),
    ("name-not-a-string", lambda _: frontmatter(f"name = 5\n[gate]\n{MANUAL}")),
    ("name-empty", lambda _: frontmatter(f'name = ""\n[gate]\n{MANUAL}')),
    ("no-frontmatter", lambda _: b"# Just markdown\n\nDo it.\n"),
    ("yaml-frontmatter", lambda _: b"---\nname: p\ngate:\n  type: manual\n---\nDo it.\n"),
    ("unclosed-frontmatter", lambda n: f'+++\nname = "{n}"\n[gate]\n{MANUAL}\n\nDo it.\n'.encode()),
    ("only-a-plus-line", lambda _: b"+++\n"),
    ("empty-file", lambda _: b""),
    ("whitespace-only", lambda _: b"  \n\n\t\r\n"),
    ("invalid-toml", lambda n: frontmatter(f'name = "{n}"\n[gate]\ntype = manual')),
    ("invalid-utf8", lambda n: f'+++\nname = "{n}"\ndescription = "caf'.encode() + b'\xe9"\n[gate]\ntype = "manual"\n+++\nx\n'),
    ("nul-bytes", lambda n: f'+++\nname = "{n}\x00"\n[gate]\n{MANUAL}\n+++\n\x00\x00\n'.encode()),
    ("bom-crlf-broken", lambda _: b'\xef\xbb\xbf+++\r\nname = "Broken"\r\n[gate]\r\ntype = "manual"\r\n+++\r\nx\r\n'),
    ("deep-arrays-500", lambda n: gate_doc(n, MANUAL, f"x = {'[' * 500}{']' * 500}")),
    ("deep-inline-tables-500", lambda n: gate_doc(n, MANUAL, f"x = {'{a = ' * 500}1{'}' * 500}")),
    ("million-unclosed-brackets", lambda _: b"+++\nx = " + b"[" * 1_000_000 + b"\n+++\n"),
    ("over-one-mib", lambda n: gate_doc(n, MANUAL) + b"x" * (MIB + 1)),
    ("huge-integer", lambda n: gate_doc(n, MANUAL, f"version = {'9' * 5000}")),
    ("unknown-gate-type", lambda n: gate_doc(n, 'type = "sometimes"')),
    ("gate-not-a-table", lambda n: frontmatter(f'name = "{n}"\ngate = "manual"')),
    ("gate-type-not-a-string", lambda n: gate_doc(n, "type = 1")),
    ("cooldown-missing-duration", lambda n: gate_doc(n, 'type = "cooldown"')),
    ("bad-duration", lambda n: gate_doc(n, 'type = "cooldown"\nduration = "soon"')),
    ("duration-in-months", lambda n: gate_doc(n, 'type = "cooldown"\nduration = "5M"')),
    ("overflowing-duration", lambda n: gate_doc(n, 'type = "cooldown"\nduration = "99999999999999999999h"')),
    ("four-hundred-digit-duration", lambda n: gate_doc(n, f'type = "cooldown"\nduration = "{"9" * 400}s"')),
    ("zero-duration", lambda n: gate_doc(n, 'type = "cooldown"\nduration = "0s"')),
    ("cron-invalid-expression", lambda n: gate_doc(n, 'type = "cron"\nschedule = "every day"')),
    ("cron-never-fires-april-31", lambda n: gate_doc(n, 'type = "cron"\nschedule = "0 0 31 4 *"')),
    ("cron-never-fires-february-30", lambda n: gate_doc(n, 'type = "cron"\nschedule = "0 0 30 2 *"')),
    ("bad-timezone", lambda n: gate_doc(n, 'type = "cron"\nschedule = "0 3 * * *"\ntimezone = "Mars/Olympus"')),
    ("condition-without-check", lambda n: gate_doc(n, 'type = "condition"')),
    ("condition-empty-check", lambda n: gate_doc(n, 'type = "condition"\ncheck = "  "')),
    ("overflowing-check-timeout", lambda n: gate_doc(n, 'type = "condition"\ncheck = "true"\ncheck_timeout = "99999999999999999999h"')),
    ("event-bad-name", lambda n: gate_doc(n, 'type = "event"\non = "Start Up"')),
    ("script-without-run-sh", lambda n: manual_doc(n, '[execution]\ntype = "script"')),
    ("agent-without-instructions", lambda n: frontmatter(f'name = "{n}"\n[gate]\n{MANUAL}', "\n  \n")),
    ("unknown-execution-type", lambda n: manual_doc(n, '[execution]\ntype = "docker"')),
    ("bad-severity", lambda n: manual_doc(n, '[execution]\nseverity = "urgent"')),
    ("timeout-not-a-string", lambda n: manual_doc(n, "[execution]\ntimeout = 600")),
    ("overflowing-timeout", lambda n: manual_doc(n, '[execution]\ntimeout = "99999999999999999999h"')),
    ("labels-not-a-list", lambda n: manual_doc(n, '[tracking]\nlabels = "team:ops"')),
    ("label-without-colon", lambda n: manual_doc(n, '[tracking]\nlabels = ["team:ops", "nocolon"]')),
    ("enabled-not-bool", lambda n: gate_doc(n, MANUAL, 'enabled = "yes"')),
    ("version-a-table", lambda n: gate_doc(n, MANUAL, "version = {major = 1}")),
    # An invalid copy carrying a valid plugin's name: it must be listed, and must not hide or replace the valid one.
    ("invalid-copy-of-a-valid-name", lambda _: gate_doc("valid-town", 'type = "sometimes"')),
]


def _plugin_md_is_a_directory(entry: Path) -> list[Poison]:
    (entry / "plugin.md").mkdir(parents=True)
    return [Poison("plugin-md-is-a-directory", entry / "plugin.md", "invalid", either=True)]


def _plugin_md_is_a_fifo(entry: Path) -> list[Poison]:
    entry.mkdir(parents=True)
    os.mkfifo(entry / "plugin.md")
    return [Poison("plugin-md-is-a-fifo", entry / "plugin.md", "invalid", either=True)]


def _plugin_md_is_dev_null(entry: Path) -> list[Poison]:
    entry.mkdir(parents=True)
    (entry / "plugin.md").symlink_to(os.devnull)
    return [Poison("plugin-md-is-dev-null", entry / "plugin.md", "invalid", either=True)]


def _plugin_md_dangling_symlink(entry: Path) -> list[Poison]:
    entry.mkdir(parents=True)
    (entry / "plugin.md").symlink_to(entry / "gone.md")
    return [Poison("plugin-md-dangling-symlink", entry / "plugin.md", "invalid", either=True)]


def _plugin_md_symlink_loop(entry: Path) -> list[Poison]:
    entry.mkdir(parents=True)
    (entry / "plugin.md").symlink_to(entry / "other.md")
    (entry / "other.md").symlink_to(entry / "plugin.md")
    return [Poison("plugin-md-symlink-loop", entry / "plugin.md", "invalid", either=True)]


def _entry_dangling_symlink(entry: Path) -> list[Poison]:
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.symlink_to(entry.parent / "no-such-plugin-dir")
    return [Poison("entry-dangling-symlink", entry, "invalid", either=True)]


def _entry_symlink_loop(entry: Path) -> list[Poison]:
    entry.parent.mkdir(parents=True, exist_ok=True)
    partner = entry.with_name(entry.name + "-partner")
    entry.symlink_to(partner)
    partner.symlink_to(entry)
    return [Poison("entry-symlink-loop", entry, "invalid", either=True),
            Poison("entry-symlink-loop-partner", partner, "invalid", either=True)]


def _run_sh_without_plugin_md(entry: Path) -> list[Poison]:
    entry.mkdir(parents=True)
    (entry / "run.sh").write_text("echo orphan\n", encoding="utf-8")
    return [Poison("run-sh-without-plugin-md", entry, "warning")]


def _plain_file_in_plugins(entry: Path) -> list[Poison]:
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(f'+++\nname = "{entry.name}"\n[gate]\n{MANUAL}\n+++\nA plugin.md without its directory.\n', encoding="utf-8")
    return [Poison("plain-file-in-plugins", entry, "warning", either=True)]


def _unreadable_plugin_md(entry: Path) -> list[Poison]:
    entry.mkdir(parents=True)
    (entry / "plugin.md").write_bytes(gate_doc(entry.name, MANUAL))
    (entry / "plugin.md").chmod(0)
    return [Poison("unreadable-plugin-md", entry / "plugin.md", "invalid", either=True)]


FILESYSTEM: list[tuple[str, Callable[[Path], list[Poison]]]] = [
    ("plugin-md-is-a-directory", _plugin_md_is_a_directory),
    ("plugin-md-is-a-fifo", _plugin_md_is_a_fifo),
    ("plugin-md-is-dev-null", _plugin_md_is_dev_null),
    ("plugin-md-dangling-symlink", _plugin_md_dangling_symlink),
    ("plugin-md-symlink-loop", _plugin_md_symlink_loop),
    ("entry-dangling-symlink", _entry_dangling_symlink),
    ("entry-symlink-loop", _entry_symlink_loop),
    ("run-sh-without-plugin-md", _run_sh_without_plugin_md),
    ("plain-file-in-plugins", _plain_file_in_plugins),
]
ROOT_CAN_READ_ANYTHING = os.geteuid() == 0  # chmod 0 stops nobody when the tests run as root
if not ROOT_CAN_READ_ANYTHING:
    FILESYSTEM.append(("unreadable-plugin-md", _unreadable_plugin_md))

KINDS: list[str] = [kind for kind, _ in CONTENT] + [kind for kind, _ in FILESYSTEM]


def build_one(town: Path, kind: str, index: int = 0) -> list[Poison]:
    """Create one poison of ``kind`` in the place ``index`` picks (round robin over PLACES)."""
    plugins = town / PLACES[index % len(PLACES)]
    entry = plugins / f"p{index:02d}-{kind}"
    for content_kind, make in CONTENT:
        if content_kind == kind:
            entry.mkdir(parents=True)
            (entry / "plugin.md").write_bytes(make(kind))
            return [Poison(kind, entry / "plugin.md", "invalid")]
    builder = dict(FILESYSTEM)[kind]
    return builder(entry)


def build_poison(town: Path) -> list[Poison]:
    """Every poison kind in one town at once (rig ``alpha`` and its crew clone ``bob`` included)."""
    for place in PLACES:
        (town / place).mkdir(parents=True, exist_ok=True)
    found: list[Poison] = []
    for index, kind in enumerate(KINDS):
        found += build_one(town, kind, index)
    return found


# -- the good neighbours ------------------------------------------------------------------

COOLDOWN = 'type = "cooldown"\nduration = "1h"'
DECADE = 'type = "cooldown"\nduration = "87600h"'  # the longest cooldown gtui accepts: valid, and must not overflow later
VALID: list[tuple[str, str, str]] = [
    # (name, where, gate)
    ("valid-town", "plugins", COOLDOWN),
    ("valid-rig", "alpha/plugins", COOLDOWN),
    ("valid-crew", "alpha/crew/bob/plugins", COOLDOWN),
    ("valid-decade", "plugins", DECADE),
    ("valid-manual", "alpha/plugins", MANUAL),
]
SHADOW = "valid-shadow"  # a valid name with a town copy and a rig copy: the rig copy wins, the town copy is shadowed, not poison
RUN_BY_THEMSELVES = ["valid-town", "valid-rig", "valid-crew", "valid-decade", SHADOW]
MANUAL_ONLY = ["valid-manual"]


def marker(town: Path, name: str) -> Path:
    """The file ``name``'s run.sh appends one line to per run (under a dot-directory, which discovery skips)."""
    return town / ".markers" / name


def marker_lines(town: Path, name: str) -> list[str]:
    path = marker(town, name)
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _appending(town: Path, name: str, line: str) -> str:
    return f"printf '%s\\n' '{line}' >> '{marker(town, name)}'\n"


def valid_plugins(town: Path) -> list[str]:
    """Write the valid plugins (each run.sh appends a line to its marker file); returns the names discovery must keep."""
    marker(town, "x").parent.mkdir(parents=True, exist_ok=True)
    for name, where, gate in VALID:
        add_plugin(town, name, gate, _appending(town, name, name), where=where)
    add_plugin(town, SHADOW, COOLDOWN, _appending(town, SHADOW, "town copy"), where="plugins")
    add_plugin(town, SHADOW, COOLDOWN, _appending(town, SHADOW, "rig copy"), where="alpha/plugins")
    return [name for name, _, _ in VALID] + [SHADOW]


def shadow_paths(town: Path) -> tuple[Path, Path]:
    """(winner, shadowed) plugin.md paths of the shadowing pair."""
    return town / "alpha" / "plugins" / SHADOW / "plugin.md", town / "plugins" / SHADOW / "plugin.md"
