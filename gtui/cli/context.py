"""What a command runs with: the town, its engine (made on demand) and the output, for JSON or for people."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from gtcore.core.errors import NotFound
from gtcore.engine import Engine
from gtcore.model import TYPE_CHECKING, Town
from gtui import terminal

if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from rich.console import Console

    from gtcore.model import ScanKeeper


class Context:
    """What a command needs: the town, its engine (made on demand) and the output.

    ``reads_only`` commands open the ledger read-only and, unless their answer
    needs ``settings_as_written``, still answer on a broken ``gtui.toml`` (the
    problem is said on stderr): one can always look.  Commands that run or
    deliver need their settings and stop on them.
    """

    def __init__(self, args: argparse.Namespace, *, reads_only: bool = False, settings_as_written: bool = False,
                 scans: ScanKeeper | None = None) -> None:
        self.args = args
        self.scans = scans  # the kennel's last scan of the town, for the engine (see Engine)
        self.json = bool(getattr(args, "json", False))
        self.town = locate_town(args)
        self.reads_only = reads_only or bool(getattr(args, "read_only", False))
        self.settings_as_written = settings_as_written
        self._console: Console | None = None
        self._engine: Engine | None = None
        self.notes: list[str] = []  # what the console script's door said (gtui.thin): problems of this answer
        self.gone: Callable[[], bool] = _here  # whether the one who asked went away (only a kennel's answer can tell)

    def release(self) -> None:
        """Close what the command opened that its process would have closed by ending (see :func:`main`)."""
        if self._engine is not None:
            self._engine.release()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if self.reads_only:
                # A listing reads the ledger read-only and still keeps the parse caches warm; --read-only writes nothing.
                keep = not getattr(self.args, "read_only", False)
                if self.settings_as_written:
                    self._engine = Engine(self.town, readonly=True, keep_caches=keep, scans=self.scans)
                    return self._engine
                self._engine = Engine.tolerant(self.town, readonly=True, keep_caches=keep, scans=self.scans)
                if self._engine.settings_problem:
                    warn(f"{self._engine.settings_problem} (defaults used for this listing)")
            else:
                from gtui.cli.dispatching import KENNEL_ARGV

                self._engine = Engine(self.town, plugin_bin=self._plugin_bin, kennel_argv=KENNEL_ARGV, scans=self.scans)
        return self._engine

    def kennel_engine(self) -> Engine:
        """The engine of a kennel: it runs the plugins, so it adopts what they leave behind and gives them gt and bd."""
        from gtui.cli.dispatching import KENNEL_ARGV

        self._engine = Engine(self.town, adopt_orphans=True, plugin_bin=self._plugin_bin, kennel_argv=KENNEL_ARGV)
        return self._engine

    def _plugin_bin(self) -> tuple[Path, ...]:
        from gtui.shims.bin import plugin_bin

        return plugin_bin(self.town)

    @property
    def render(self) -> ModuleType:
        """Drawing for people (Rich): imported only when a person reads the output."""
        from gtui.cli import render

        return render

    @property
    def console(self) -> Console:
        """Rich, for people only: a ``--json`` command never imports it."""
        if self._console is None:
            self._console = terminal.console()
        return self._console

    def say(self, *parts: object | tuple[object, str]) -> None:
        """Print one line for people, every part made safe first; to a pipe or file, where no style shows, as plain text
        without importing Rich (a plugin's ``gt escalate`` says three lines: Rich would be a third of its time)."""
        if self._console is None and not sys.stdout.isatty():
            sys.stdout.write(terminal.plain(*parts) + "\n")
        else:
            self.console.print(terminal.text(*parts))

    def say_lines(self, lines: Iterable[object | tuple[object, str]]) -> None:
        """:meth:`say` each of ``lines``, one line each: the people's side of :meth:`emit` for lines already worded."""
        for line in lines:
            self.say(line)

    def emit(self, payload: dict[str, Any], human: Callable[[], None]) -> None:
        """Print ``payload`` as JSON or call ``human`` to draw it for people."""
        if self.json:
            # One line: programs read it, and indenting costs as much as the patrol.  The payload is
            # built here from records, never cyclic: checking for cycles would cost a tenth of the dump.
            sys.stdout.write(json.dumps(payload, check_circular=False) + "\n")
        else:
            human()


def warn(message: str, level: str = "warning") -> None:
    sys.stderr.write(f"gtui: {level}: {terminal.safe(message)}\n")


def locate_town(args: argparse.Namespace) -> Town:
    """The town, which must look like one: a typo in --town must not plant a ledger in a random directory."""
    town = Town.locate(getattr(args, "town", None))
    if not town.looks_like_a_town():
        raise NotFound(f"{town.root} is not a town: it has none of plugins/, settings/, mayor/town.json, city.toml or .gtui/;"
                       f" make it one with: gtui init {town.root}")
    return town


def _here() -> bool:
    """The one who asked is this process: it never went away."""
    return False
