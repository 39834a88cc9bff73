"""The ``gtui`` command line: one entry point, every listing with ``--json``.

Errors reach the user as one line on stderr (and as ``{"error": ...}`` on
stdout with ``--json``) with exit status 2; a traceback never does.  The
commands are one table (:mod:`gtui.cli.parser`); they run with a
:class:`Context`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from gtcore.core.errors import GtError, NotFound, brief, save_crash_report
from gtcore.engine import Engine
from gtcore.model import TYPE_CHECKING, Town
from gtui import terminal
from gtui.cli.parser import BY_WORDS, EXIT_ERROR, ONCE, Command, _with_default_verb, quick_parse
from gtui.cli.parser import UsageError as UsageError
from gtui.cli.parser import build_parser as build_parser

if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from rich.console import Console

    from gtcore.model import ScanKeeper
    from gtui.cli.parser import Arguments

class Context:
    """What a command needs: the town, its engine (made on demand) and the output.

    ``reads_only`` commands open the ledger read-only and, unless their answer
    needs ``settings_as_written``, still answer on a broken ``gtui.toml`` (the
    problem is said on stderr): one can always look.  Commands that run or
    deliver need their settings and stop on them.
    """

    def __init__(self, args: Arguments, *, reads_only: bool = False, settings_as_written: bool = False,
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


def locate_town(args: Arguments) -> Town:
    """The town, which must look like one: a typo in --town must not plant a ledger in a random directory."""
    town = Town.locate(getattr(args, "town", None))
    if not town.looks_like_a_town():
        raise NotFound(f"{town.root} is not a town: it has none of plugins/, settings/, mayor/town.json, city.toml or .gtui/;"
                       f" make it one with: gtui init {town.root}")
    return town


def _here() -> bool:
    """The one who asked is this process: it never went away."""
    return False


class Stopped(GtError):
    """A signal (SIGHUP, SIGTERM) asked this command to go away."""


def main(argv: Sequence[str] | None = None, *, notes: Sequence[str] = (), release: bool = False,
         gone: Callable[[], bool] | None = None, scans: ScanKeeper | None = None) -> int:
    """The command line, in this process (:mod:`gtui.thin` is the console script's door, which may have the town's
    kennel answer instead).  ``notes``: what the door has to say of its own (the kennel did not answer in time), a
    problem of ``--once``'s answer, a warning of any other command's.  ``release``: the process lives on (the kennel
    answering a thin command): the command's ledger connections are closed when it ends.  ``gone``: whether the one who
    asked went away (the kennel answering): a command then takes nothing it cannot give back.  ``scans``: the kennel's
    last scan of the town, taken while nothing it read changed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    args, ctx = None, None
    try:
        argv = _with_default_verb(argv)
        args = quick_parse(argv) or build_parser(argv).parse_args(argv)
        if args.command == "init":
            return cmd_init(args)  # it makes the town, so it takes no Context
        command = ONCE if args.once else BY_WORDS.get((args.command, getattr(args, "verb", None)))
        if command is None:
            return control_room(args)
        _refuse_writes_when_read_only(args, command)
        ctx = Context(args, reads_only=command.reads, settings_as_written=command.settings_as_written, scans=scans)
        ctx.notes = list(notes)
        ctx.gone = gone or ctx.gone
        if command is not ONCE:
            for note in ctx.notes:
                warn(note)
        with _stopped_by_signals():
            return command.handler()(ctx)
    except (Stopped, KeyboardInterrupt) as exc:
        reason = str(exc) if isinstance(exc, Stopped) else "interrupted (SIGINT)"
        return _fail(f"{reason}; what it queued is the kennel's to run", wants_json)
    except GtError as exc:
        return _fail(str(exc), wants_json)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: never a traceback
        return _fail(f"internal error (a bug in gtui): {type(exc).__name__}: {brief(exc, 200)} ({_save_crash(args)})", wants_json)
    finally:
        if release and ctx is not None:
            ctx.release()


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGHUP (the terminal closed) and SIGTERM become :class:`Stopped`, so a command ends its runs before it goes.
    A command a kennel answers in a thread of its own (:mod:`gtui.thin`) leaves the kennel's signals alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Stopped(f"stopped by {signal.Signals(signum).name}")

    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _refuse_writes_when_read_only(args: Arguments, command: Command) -> None:
    if not getattr(args, "read_only", False) or command.reads or command.honours_read_only:
        return
    if command.dry_run and getattr(args, "dry_run", False):
        return
    words = " ".join(part for part in (args.command, getattr(args, "verb", None)) if part)
    raise UsageError(f"'gtui {words}' writes to the ledger, and --read-only never writes; run it without --read-only")


def cmd_init(args: Arguments) -> int:
    """Make a directory a town: ``plugins/`` and a ``settings/gtui.toml`` that shows the settings (all commented out)."""
    root = Path(args.path).expanduser().resolve()
    made = []
    try:
        for directory in (root / "plugins", root / "settings"):
            if not directory.is_dir():
                directory.mkdir(parents=True)
                made.append(f"{directory}/")
        settings = root / "settings" / "gtui.toml"
        if not settings.exists():
            settings.write_text(SETTINGS_TEMPLATE, encoding="utf-8")
            made.append(str(settings))
    except OSError as exc:
        raise GtError(f"cannot make {root} a town: {exc.strerror or exc}") from None
    payload = {"town": str(root), "made": made}
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(terminal.safe(f"{root} is a town" + (f": made {', '.join(made)}" if made else " already") + "\n"))
    return 0


SETTINGS_TEMPLATE = """# gtui settings for this town; every field is optional (docs/operations.md lists them all).
# dogs = 4                   # plugin runs at once
# patrol_interval = "60s"    # how often the control room patrols
# retention_days = 7         # finished runs of non-digest plugins are pruned after this
# kill_grace = "5s"          # SIGTERM, then SIGKILL after this
# delivery_timeout = "10s"   # one escalation delivery, connect to last byte
# agent_command = ["claude", "-p"]   # runs plugins that have instructions and no run.sh
# [keymap]
# "plugins.run" = "R"        # binding id = keys (ids on the help screen, ?)
"""


def control_room(args: Arguments) -> int:
    """``gtui`` alone: the TUI, which needs a terminal; a pipe gets a pointer to ``--once``."""
    town = locate_town(args)
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise UsageError("the control room needs a terminal; for a headless patrol use 'gtui --once' (add --json for programs)")
    from gtui.cli.dispatching import KENNEL_ARGV
    from gtui.tui.app import GtuiApp
    from gtui.tui.gc_tuning import TIDY_SECONDS, GcTuning, share_malloc_arenas

    # Textual sizes itself with shutil.get_terminal_size(), which prefers COLUMNS and LINES when they are
    # exported: a stale pair would draw the control room at the wrong size and ignore every resize.
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)
    read_only = bool(getattr(args, "read_only", False))
    share_malloc_arenas()  # the worker threads' freed memory serves them all, not each its own
    with GcTuning(tidy=TIDY_SECONDS) as gc_tuning:  # start-up's objects frozen out of the scans once on screen, then tidied
        app = GtuiApp(town, read_only=read_only, kennel_argv=KENNEL_ARGV, on_first_paint=gc_tuning.freeze)

        def hung_up(signum: int, frame: object) -> None:
            """The terminal closed (or someone asked): leave like a quit, from a thread, as Textual wants it."""
            threading.Thread(target=lambda: app.call_from_thread(app.exit), daemon=True).start()

        for sig in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, hung_up)
        try:
            app.run()
        finally:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal is gone: nothing more to hear from it
            if app.engine is not None:
                app.engine.close()  # the app did, unless it never got to unmount; the kennel keeps running what it queued
    return 0


def _fail(message: str, wants_json: bool) -> int:
    if wants_json:
        sys.stdout.write(json.dumps({"error": message}) + "\n")
    sys.stderr.write(f"gtui: error: {terminal.safe(message)}\n")
    return EXIT_ERROR


def _save_crash(args: Arguments | None) -> str:
    """Keep the traceback for developers in ``<town>/.gtui/crash/`` instead of on the user's screen."""
    import tempfile
    import traceback

    try:
        directory = Town.locate(getattr(args, "town", None)).state_dir / "crash"
    except GtError:
        directory = Path(tempfile.gettempdir()) / "gtui-crash"
    return save_crash_report(directory, traceback.format_exc())
