"""The ``gtui`` command line: one entry point, every listing with ``--json``.

Errors reach the user as one line on stderr (and as ``{"error": ...}`` on
stdout with ``--json``) with exit status 2; a traceback never does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from gtcore.core.errors import GtError, NotFound, brief, save_crash_report
from gtcore.engine import Engine
from gtcore.model import SEVERITIES, TYPE_CHECKING, Report, Town
from gtui import terminal
from gtui.cli import dispatching

if TYPE_CHECKING:
    from datetime import date
    from types import ModuleType
    from typing import Any, NoReturn

    from rich.console import Console

    from gtcore.model import ScanKeeper

EXIT_ERROR = 2


class UsageError(GtError):
    """The command line itself is wrong."""


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, minus its ``import shutil`` (it asks for the terminal's width on every argument)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None) -> None:
        if width is None:
            try:
                width = min(os.get_terminal_size().columns, 140) - 2
            except OSError:
                width = 100
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as one line instead of a usage dump."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common(parser: argparse.ArgumentParser, *, json: bool = True) -> None:
    """Options every command takes; SUPPRESS lets them stand before or after the verb."""
    parser.add_argument("--town", default=argparse.SUPPRESS, metavar="PATH",
                        help="town root, or a Gas City city's (default: $GT_TOWN_ROOT, $GT_ROOT, $GT_TOWN, $GC_CITY, the town or city"
                             " above the working directory, else ~/gt)")
    parser.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS,
                        help="never write: the ledger is opened read-only and commands that would write refuse")
    if json:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON (errors too: {\"error\": ...})")


def _named(parser: argparse.ArgumentParser, what: str = "the plugin's name (see gtui plugin list)") -> None:
    parser.add_argument("name", help=what)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given ``argv``, only the command and verb it names are built.

    Every parser argparse makes costs (its help option, its translated
    words): building all twenty-odd of them cost more than an idle patrol's
    own work.  A command builds its own parser and its own verb's; an unknown
    word gets the names of the choices, so argparse can say what they are;
    ``--help`` (or no ``argv``) builds all.
    """
    parser = _Parser(prog="gtui", description="Gas Town plugin engine and control room. Without a command: the control room.")
    _common(parser)
    parser.add_argument("--once", action="store_true",
                        help="run one headless patrol: queue the open plugins' runs for the kennel, report, return at once")
    parser.add_argument("--event", action="append", default=[], metavar="NAME", help="with --once: emit this event first (repeatable)")
    parser.add_argument("--wait", action="store_true", help="with --once: wait for the runs it queued and report their results")
    everything = argv is None or "-h" in argv or "--help" in argv
    _add_choices(parser, "command", "COMMAND", COMMAND_PARSERS, None if everything else list(argv or ()))
    return parser


Builder = Callable[[argparse.ArgumentParser], None]
Choices = dict[str, tuple[str, "Builder | Choices"]]


def _add_choices(parser: argparse.ArgumentParser, dest: str, metavar: str, choices: Choices, argv: list[str] | None) -> None:
    """Subcommands (or verbs) of ``parser``: all of them when ``argv`` is None, else the one its next word names.

    No command word at all (``gtui --once``): no subparsers, ``command`` is
    None.  A missing or unknown verb: the verbs' names, for argparse to list.
    """
    at = None if argv is None else _word_index(argv)
    if argv is not None and at is None and dest == "command":
        parser.set_defaults(command=None)
        return
    word = None if argv is None or at is None else argv[at]
    sub = parser.add_subparsers(dest=dest, required=dest != "command", parser_class=_Parser, metavar=metavar)
    for name, (text, build) in choices.items():
        if argv is not None and word in choices and name != word:
            continue
        child = sub.add_parser(name, help=text)
        if argv is None or name == word:
            rest = None if argv is None or at is None else argv[at + 1:]
            if isinstance(build, dict):
                _add_choices(child, "verb", "VERB", build, rest)
            else:
                build(child)


def _init_parser(init: argparse.ArgumentParser) -> None:
    init.add_argument("path", nargs="?", default=".", help="the town's root directory (default: the working directory)")
    _common(init)


def _common_only(parser: argparse.ArgumentParser) -> None:
    _common(parser)


def _plugin_show(show: argparse.ArgumentParser) -> None:
    _named(show)
    _common(show)


def _plugin_history(history: argparse.ArgumentParser) -> None:
    _named(history)
    history.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="at most N runs and N days (default 20)")
    _common(history)


def _plugin_run(run: argparse.ArgumentParser) -> None:
    _named(run)
    run.add_argument("--force", action="store_true", help="run even if disabled in its plugin.md or paused by an operator")
    run.add_argument("--detach", action="store_true", help="print the run's id and return; the kennel runs it")
    _common(run)


def _plugin_digest(digest: argparse.ArgumentParser) -> None:
    day = digest.add_mutually_exclusive_group()
    day.add_argument("--yesterday", action="store_true", help="yesterday (UTC), the default")
    day.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="that UTC day")
    digest.add_argument("--dry-run", action="store_true", help="say what would be squashed, change nothing")
    _common(digest)


def _plugin_toggle(toggle: argparse.ArgumentParser) -> None:
    _named(toggle)
    toggle.add_argument("--reason", default="", metavar="R", help="why, kept with the pause (shown in listings)")
    _common(toggle)


def _plugin_log(log: argparse.ArgumentParser) -> None:
    _named(log)
    log.add_argument("run_id", nargs="?", metavar="RUN-ID", help="which run (run-12); default the latest")
    _common(log)


def _dog_dispatch(dispatch: argparse.ArgumentParser) -> None:
    dispatch.add_argument("--plugin", required=True, metavar="NAME", help="the plugin to run")
    dispatch.add_argument("--rig", metavar="RIG", help="run a town-level plugin for this rig (GT_RIG); a rig's plugin only for its own")
    _common(dispatch)


def _kennel_run(run: argparse.ArgumentParser) -> None:
    run.add_argument("--patrol", action="store_true", help="also patrol every patrol_interval: a town with no Deacon runs from it")
    run.add_argument("--autostarted", action="store_true", help=argparse.SUPPRESS)  # started by a command: detach, exit when idle
    _common(run, json=False)


def _kennel_stop(stop: argparse.ArgumentParser) -> None:
    stop.add_argument("--drain", action="store_true", help="take nothing new and exit when the runs in flight end")
    _common(stop)


def _stale_parser(stale: argparse.ArgumentParser) -> None:
    stale.add_argument("name", nargs="?", help="which [[stale.binaries]] entry (default: the one named gt, else the first)")
    from gtui.shims import flags

    flags.add_arguments(stale, flags.STALE)
    _common(stale, json=False)


def _report_parser(report: argparse.ArgumentParser) -> None:
    report.add_argument("result", help="success, failure, skipped, warning or check-only")
    report.add_argument("summary", help="one line for the feed and the plugin table")
    report.add_argument("--detail", default="", metavar="D", help="more words, shown in details and history")
    _common(report)


def _event_emit(emit: argparse.ArgumentParser) -> None:
    emit.add_argument("name", help="the event's name (lowercase letters, digits, '.', '_', '-')")
    _common(emit)


def _escalate_raise(raise_: argparse.ArgumentParser) -> None:
    from gtui.shims import flags

    flags.add_arguments(raise_, flags.ESCALATE)  # Gas Town's gt escalate, flag for flag
    _common(raise_, json=False)


def _escalate_list(listing: argparse.ArgumentParser) -> None:
    listing.add_argument("--all", action="store_true", help="closed ones too")
    listing.add_argument("--severity", type=str.lower, choices=SEVERITIES, metavar="S",
                         help="only this severity (low, medium, high, critical)")
    listing.add_argument("--stale", action="store_true", help="only stale ones")
    _common(listing)


def _escalate_one(one: argparse.ArgumentParser) -> None:
    one.add_argument("id", help="the escalation (esc-12)")
    _common(one)


def _escalate_close(close: argparse.ArgumentParser) -> None:
    close.add_argument("id", help="the escalation (esc-12)")
    close.add_argument("--reason", required=True, metavar="R", help="why it is closed (kept on it)")
    _common(close)


def _escalate_stale(stale: argparse.ArgumentParser) -> None:
    stale.add_argument("--dry-run", "-n", action="store_true", help="say what would move, change nothing")
    _common(stale)


def _ledger_copy(copy: argparse.ArgumentParser) -> None:
    copy.add_argument("--to", required=True, metavar="URL", help="the empty target: postgresql://user@host/database")
    _common(copy)


def _mail_list(mail_list: argparse.ArgumentParser) -> None:
    mail_list.add_argument("--to", metavar="TARGET", help="only mail to this address (mayor, <rig>/witness, ...)")
    _common(mail_list)


COMMAND_PARSERS: Choices = {
    "init": ("make PATH a town gtui can run: plugins/ and settings/gtui.toml", _init_parser),
    "plugin": ("list, inspect and run plugins", {
        "list": ("every plugin with its gate and last run", _common_only),
        "show": ("one plugin in full", _plugin_show),
        "history": ("recent runs of a plugin, then its digested days", _plugin_history),
        "run": ("run a plugin now, whatever its gate, and follow it to its result (--detach: return at once)", _plugin_run),
        "digest": ("squash a past day's runs into its digest (default: yesterday, UTC)", _plugin_digest),
        "enable": ("resume a paused plugin", _plugin_toggle),
        "disable": ("pause a plugin (it stops opening by itself)", _plugin_toggle),
        "log": ("a run's log (default: the plugin's latest run)", _plugin_log),
    }),
    "dog": ("the dogs that run plugins", {
        "list": ("every dog, idle or working, in any gtui process on the town", _common_only),
        "dispatch": ("queue a run of a plugin for a dog now and return with its id", _dog_dispatch),
    }),
    "kennel": ("the process that executes every run: gtui kennel [--patrol] | status | stop [--drain]", {
        "run": ("run the kennel in the foreground (for systemd, tmux, a supervisor)", _kennel_run),
        "status": ("the town's kennels: host, pid, heartbeat, dogs, runs", _common_only),
        "stop": ("stop this host's kennel (its runs are stopped and recorded), or drain it", _kennel_stop),
    }),
    "escalate": ("raise and manage escalations (gtui escalate WORDS... -s SEVERITY)", {
        "raise": ("raise an escalation: gtui escalate SUBJECT WORDS... (the verb may be left out)", _escalate_raise),
        "list": ("open and acknowledged escalations", _escalate_list),
        "ack": ("acknowledge: it stops re-escalating", _escalate_one),
        "show": ("one escalation with deliveries and history", _escalate_one),
        "close": ("close with a reason", _escalate_close),
        "stale": ("re-escalate stale escalations now", _escalate_stale),
    }),
    "mail": ("mail beads (escalations routed to mail:<target>, gt mail send)", {
        "list": ("mail, newest first", _mail_list),
    }),
    "stale": ("is a binary of [[stale.binaries]] behind its repository? (Gas Town's gt stale)", _stale_parser),
    "report": ("inside a plugin run: report its result and summary (like bd create -l type:plugin-run)", _report_parser),
    "event": ("town events (event gates listen for them)", {
        "emit": ("record that an event happened", _event_emit),
    }),
    "ledger": ("the town's ledger", {
        "copy": ("copy it, runs' logs included, into an empty PostgreSQL ledger every host can share", _ledger_copy),
    }),
}


DEFAULT_VERBS = {command: (tuple(COMMAND_PARSERS[command][1]), verb)  # type: ignore[arg-type]
                 for command, verb in (("escalate", "raise"), ("kennel", "run"))}
"""Commands whose verb may be left out: ``gtui escalate SUBJECT`` raises, ``gtui kennel`` runs the kennel."""


def _word_index(argv: list[str]) -> int | None:
    """Where the first word of ``argv`` that is no option nor an option's value is (None: there is none)."""
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in ("--town", "--event"):
            index += 2
        elif token.startswith("-"):
            index += 1
        else:
            return index
    return None


def _command_word(argv: list[str]) -> str | None:
    """The command (or verb) ``argv`` names: its first word (None: the control room or --once)."""
    index = _word_index(argv)
    return None if index is None else argv[index]


def _with_default_verb(argv: list[str]) -> list[str]:
    """``gtui escalate SUBJECT ...`` means ``gtui escalate raise SUBJECT ...``; ``gtui kennel [--patrol]`` means ``gtui kennel run``."""
    command = _command_word(argv)
    if command not in DEFAULT_VERBS:
        return argv
    verbs, default = DEFAULT_VERBS[command]
    index = argv.index(command)
    following = argv[index + 1] if index + 1 < len(argv) else None
    if following not in (*verbs, "-h", "--help") and (following is not None or command == "kennel"):
        return [*argv[: index + 1], default, *argv[index + 1:]]
    return argv


def _date(text: str) -> date:
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-23, not {text!r}") from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


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

    def emit(self, payload: dict[str, Any], human: Callable[[], None]) -> None:
        """Print ``payload`` as JSON or call ``human`` to draw it for people."""
        if self.json:
            # One line: programs read it, and indenting costs as much as the patrol.  The payload is
            # built here from records, never cyclic: checking for cycles would cost a tenth of the dump.
            sys.stdout.write(json.dumps(payload, check_circular=False) + "\n")
        else:
            human()


def cmd_plugin_list(ctx: Context) -> int:
    from gtcore.model import plugin_json  # the JSON shapes of plugins and runs: only the commands that print them

    plugins, now = ctx.engine.plugins(), time.time()
    facts = ctx.engine.plugin_facts(plugins.plugins, now)
    payload = {
        "town": str(ctx.town.root),
        "plugins": [plugin_json(plugin, facts.get(plugin.name)) for plugin in plugins.plugins],
        "invalid": [invalid.to_json() for invalid in plugins.invalid],
        "warnings": plugins.warnings,
    }
    ctx.emit(payload, lambda: ctx.render.plugin_list(ctx.console, plugins, facts, now))
    return 0


def cmd_plugin_show(ctx: Context) -> int:
    from gtcore.model import plugin_json

    plugin, now = ctx.engine.plugins().require(ctx.args.name, ctx.town), time.time()
    facts = ctx.engine.plugin_facts([plugin], now)[plugin.name]
    payload = {**plugin_json(plugin, facts), "instructions": plugin.instructions, "warnings": list(plugin.warnings)}
    ctx.emit(payload, lambda: ctx.render.plugin_detail(ctx.console, plugin, facts, now))
    return 0


def cmd_plugin_history(ctx: Context) -> int:
    from gtcore.model import run_json

    name = ctx.args.name
    runs = ctx.engine.runs(name, limit=ctx.args.limit)
    days = ctx.engine.digests(name, limit=ctx.args.limit)
    if not runs and not days and ctx.engine.plugins().get(name) is None:
        raise NotFound(f"no plugin named {name!r} in town {ctx.town.root}, and no runs of it on the ledger")
    payload = {"plugin": name, "runs": [run_json(run) for run in runs], "digests": days}
    ctx.emit(payload, lambda: ctx.render.run_history(ctx.console, name, runs, days, time.time()))
    return 0


def _toggle(ctx: Context, paused: bool) -> int:
    name = ctx.args.name
    changed = ctx.engine.set_paused(name, paused, ctx.args.reason)
    plugin = ctx.engine.plugin(name)
    state = "paused" if paused else "resumed"
    note = ""
    if not changed:
        state = "was already paused" if paused else "was not paused: nothing to resume"
    if not paused and not plugin.runs_by_itself:
        note += f"; it stays {plugin.disabled_reason}"
    ctx.emit({"plugin": name, "paused": paused, "changed": changed, "enabled_in_file": plugin.runs_by_itself},
             lambda: ctx.say(f"{name} {state}{note}"))
    return 0


def cmd_plugin_enable(ctx: Context) -> int:
    return _toggle(ctx, paused=False)


def cmd_plugin_disable(ctx: Context) -> int:
    return _toggle(ctx, paused=True)


def cmd_dog_list(ctx: Context) -> int:
    dogs = ctx.engine.dogs_in_town(time.time())
    ctx.emit({"dogs": dogs}, lambda: ctx.render.dog_list(ctx.console, dogs))
    return 0


def cmd_event_emit(ctx: Context) -> int:
    ctx.engine.emit_event(ctx.args.name)
    ctx.emit({"event": ctx.args.name, "emitted": True}, lambda: ctx.say(f"event {ctx.args.name} emitted"))
    return 0


def cmd_escalate_raise(ctx: Context) -> int:
    """Gas Town's ``gt escalate``: inside a run it is the plugin's escalation, tied to the run."""
    args = ctx.args
    subject = " ".join(args.words).strip()
    if not subject:
        raise UsageError("an escalation needs a subject: gtui escalate WORDS... [-s SEVERITY] [-r REASON]")
    if args.stdin and args.reason:
        raise UsageError("cannot use --stdin with --reason/-r")
    reason = terminal.read_stdin().rstrip("\n") if args.stdin else args.reason or ""
    from gtcore.model import fingerprint_label
    from gtui.shims.context import run_context

    run = run_context()
    source = args.source or (f"plugin:{run.plugin}" if run and run.plugin else "cli")
    given_source = bool(args.source) or source != "cli"
    related = args.related or (run.run_id if run else None)
    if args.dry_run:
        return _escalate_dry_run(ctx, subject, args.severity, reason, source, given_source)
    escalation, created = ctx.engine.raise_escalation(subject, args.severity, body=reason, source=source, related=related,
                                                      now=time.time(), fingerprint=args.fingerprint)
    from gtui.cli.escalate import escalation_outcome, suppressed_outcome

    suppressed = fingerprint_label(args.fingerprint) is not None and not created
    outcome = (suppressed_outcome(escalation) if suppressed
               else escalation_outcome(escalation, created, ctx.engine, given_source=given_source))
    ctx.emit(outcome.payload, lambda: [ctx.say(line) for line in outcome.lines])
    for warning in outcome.warnings:
        warn(warning, "error" if outcome.code else "warning")
    return outcome.code


def _escalate_dry_run(ctx: Context, subject: str, severity: str, reason: str, source: str, given_source: bool) -> int:
    """Gas Town's dry run, in its words (``--json``: gtui's object): nothing written, nothing sent."""
    route = ctx.engine.escalation_settings().routes.get(severity.lower())
    if route is None:
        raise UsageError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    from gtcore.model import fingerprint_label
    from gtui.cli.escalate import dry_run_lines

    label = fingerprint_label(ctx.args.fingerprint)
    payload = {"dry_run": True, "subject": subject, "severity": severity.lower(), "source": source, "actions": list(route),
               **({"fingerprint": label} if label else {})}
    lines = dry_run_lines(subject, severity.lower(), reason, source if given_source else None, label, route)
    ctx.emit(payload, lambda: [ctx.say(line) for line in lines])
    return 0


def cmd_escalate_list(ctx: Context) -> int:
    now = time.time()
    settings = ctx.engine.escalation_settings()
    found = ctx.engine.list_escalations(include_closed=ctx.args.all, severity=ctx.args.severity, stale_only=ctx.args.stale,
                                        now=now, settings=settings)
    payload = {"escalations": [item.to_json(settings, now) for item in found]}
    ctx.emit(payload, lambda: ctx.render.escalation_list(ctx.console, found, settings, now))
    return 0


def cmd_escalate_show(ctx: Context) -> int:
    now = time.time()
    escalation, settings = ctx.engine.escalation(ctx.args.id), ctx.engine.escalation_settings()
    ctx.emit(escalation.to_json(settings, now), lambda: ctx.render.escalation_detail(ctx.console, escalation, settings, now))
    return 0


def cmd_escalate_ack(ctx: Context) -> int:
    escalation = ctx.engine.ack_escalation(ctx.args.id, now=time.time())
    ctx.emit({"id": escalation.ref, "status": escalation.status},
             lambda: ctx.say(f"{escalation.ref} acknowledged"))
    return 0


def cmd_escalate_close(ctx: Context) -> int:
    escalation = ctx.engine.close_escalation(ctx.args.id, reason=ctx.args.reason, now=time.time())
    ctx.emit({"id": escalation.ref, "status": escalation.status},
             lambda: ctx.say(f"{escalation.ref} closed"))
    return 0


def cmd_escalate_stale(ctx: Context) -> int:
    moves = ctx.engine.reescalate_stale(time.time(), dry_run=ctx.args.dry_run)
    payload = {"dry_run": ctx.args.dry_run,
               "reescalated": [{"id": item.ref, "from": old, "to": new} for item, old, new in moves]}
    verb = "would go" if ctx.args.dry_run else "went"

    def human() -> None:
        for item, old, new in moves:
            ctx.say(f"{item.ref} {verb} {old} -> {new}: {item.subject}")
        if not moves:
            ctx.say("no stale escalation to move")

    ctx.emit(payload, human)
    return 0


def cmd_mail_list(ctx: Context) -> int:
    from gtcore.model import iso

    mail = ctx.engine.mail(to=ctx.args.to)
    payload = {"mail": [{"id": item.ref, "to": item.data.get("to"), "from": item.data.get("from"), "subject": item.title,
                         "body": item.body, "at": iso(item.created_at)} for item in mail]}
    ctx.emit(payload, lambda: ctx.render.mail_list(ctx.console, mail, time.time()))
    return 0


def cmd_plugin_log(ctx: Context) -> int:
    """A run's log as it stands (a run in flight: what it printed so far)."""
    name = ctx.args.name
    if ctx.args.run_id:
        run = ctx.engine.run(ctx.args.run_id)
        if run.plugin != name:
            raise NotFound(f"{run.ref} is a run of {run.plugin}, not of {name}")
    else:
        latest = ctx.engine.runs(name, limit=1)
        if not latest:
            raise NotFound(f"plugin {name} has no run on the ledger (gtui plugin history {name})")
        run = latest[0]
    text = ctx.engine.run_log(run)
    if ctx.json:
        sys.stdout.write(json.dumps({"run": run.ref, "plugin": run.plugin, "status": run.status, "result": run.result,
                                     "log": text}, indent=2) + "\n")
    else:
        sys.stdout.write(terminal.safe(text))
        if text and not text.endswith("\n"):
            sys.stdout.write("\n")
    return 0


def cmd_plugin_digest(ctx: Context) -> int:
    now = time.time()
    from datetime import timedelta

    from gtcore.model import utc_day

    day = ctx.args.date or (utc_day(now) - timedelta(days=1))
    result = ctx.engine.make_digest(day, now=now, dry_run=ctx.args.dry_run)
    ctx.emit(result.to_json(), lambda: ctx.render.digest_result(ctx.console, result))
    return 0


def cmd_stale(ctx: Context) -> int:
    """Gas Town's convention: ``--json`` prints one flat object and exits 0 (an error too, in its ``error``);
    ``--quiet`` prints nothing and exits 0 stale, 1 fresh, 2 skipped or error; plain text exits 0 (2 on error)."""
    status = ctx.engine.binary_status(ctx.args.name)
    if ctx.args.quiet:
        return EXIT_ERROR if status.error or status.skipped else 0 if status.stale else 1
    if ctx.json:
        sys.stdout.write(json.dumps(status.gastown_json(), indent=2) + "\n")
        return 0
    ctx.render.stale_report(ctx.console, [status])
    return EXIT_ERROR if status.error else 0


def cmd_ledger_copy(ctx: Context) -> int:
    """Moving to PostgreSQL: the town's ledger is copied (and checked); the hosts switch with ``ledger = URL`` in gtui.toml."""
    copied = ctx.engine.copy_ledger(ctx.args.to)
    ctx.emit(copied, lambda: ctx.say(f"copied {copied['copied']} records to {copied['to']}; the plugin summaries agree."
                                     f' Point every host at it: ledger = "{ctx.args.to}" in settings/gtui.toml'))
    return 0


def cmd_report(ctx: Context) -> int:
    """A plugin's own report of its run, for plugins that are not Gas Town's (Gas Town's use ``bd create``)."""
    from gtui.shims.context import run_context

    run = run_context()
    if run is None:
        raise UsageError("gtui report works inside a plugin run (GT_RUN_ID and GTUI_RUN_TOKEN are not set here)")
    bead = ctx.engine.report(run.run_id, run.token, Report(ctx.args.result, ctx.args.summary, ctx.args.detail))
    ctx.emit({"run": bead.ref, "reported_result": ctx.args.result, "summary": ctx.args.summary},
             lambda: ctx.say(f"{bead.ref}: reported {ctx.args.result}: {ctx.args.summary}"))
    return 0


COMMANDS: dict[tuple[str | None, str | None], Callable[[Context], int]] = {
    ("plugin", "list"): cmd_plugin_list,
    ("plugin", "show"): cmd_plugin_show,
    ("plugin", "history"): cmd_plugin_history,
    ("plugin", "run"): dispatching.cmd_plugin_run,
    ("plugin", "enable"): cmd_plugin_enable,
    ("plugin", "disable"): cmd_plugin_disable,
    ("dog", "list"): cmd_dog_list,
    ("dog", "dispatch"): dispatching.cmd_dog_dispatch,
    ("kennel", "run"): dispatching.cmd_kennel_run,
    ("kennel", "status"): dispatching.cmd_kennel_status,
    ("kennel", "stop"): dispatching.cmd_kennel_stop,
    ("event", "emit"): cmd_event_emit,
    ("plugin", "digest"): cmd_plugin_digest,
    ("stale", None): cmd_stale,
    ("escalate", "raise"): cmd_escalate_raise,
    ("escalate", "list"): cmd_escalate_list,
    ("escalate", "show"): cmd_escalate_show,
    ("escalate", "ack"): cmd_escalate_ack,
    ("escalate", "close"): cmd_escalate_close,
    ("escalate", "stale"): cmd_escalate_stale,
    ("mail", "list"): cmd_mail_list,
    ("report", None): cmd_report,
    ("plugin", "log"): cmd_plugin_log,
    ("ledger", "copy"): cmd_ledger_copy,
}


# Their ledger opens read-only: no lock, no file created.
READ_COMMANDS = {cmd_plugin_list, cmd_plugin_show, cmd_plugin_history, cmd_plugin_log, cmd_dog_list, cmd_escalate_list,
                 cmd_escalate_show, cmd_mail_list, cmd_stale, dispatching.cmd_kennel_status}
SETTINGS_AS_WRITTEN = {cmd_stale}  # a broken gtui.toml stops them: on the defaults gt stale would say "nothing to compare"
DRY_RUNS = {cmd_escalate_raise, cmd_escalate_stale, cmd_plugin_digest}  # they write nothing with --dry-run


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
        args = build_parser(argv).parse_args(argv)
        if args.command == "init":
            return cmd_init(args)  # it makes the town, so it takes no Context
        command = COMMANDS.get((args.command, getattr(args, "verb", None)))
        if args.once:
            command = dispatching.cmd_once
        elif command is None:
            return control_room(args)
        _refuse_writes_when_read_only(args, command)
        ctx = Context(args, reads_only=command in READ_COMMANDS, settings_as_written=command in SETTINGS_AS_WRITTEN, scans=scans)
        ctx.notes = list(notes)
        ctx.gone = gone or ctx.gone
        if command is not dispatching.cmd_once:
            for note in ctx.notes:
                warn(note)
        with _stopped_by_signals():
            return command(ctx)
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


def _here() -> bool:
    """The one who asked is this process: it never went away."""
    return False


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


def _refuse_writes_when_read_only(args: argparse.Namespace, command: Callable[[Context], int]) -> None:
    if not getattr(args, "read_only", False) or command in READ_COMMANDS or command is dispatching.cmd_once:
        return
    if command in DRY_RUNS and getattr(args, "dry_run", False):
        return
    words = " ".join(part for part in (args.command, getattr(args, "verb", None)) if part)
    raise UsageError(f"'gtui {words}' writes to the ledger, and --read-only never writes; run it without --read-only")


def locate_town(args: argparse.Namespace) -> Town:
    """The town, which must look like one: a typo in --town must not plant a ledger in a random directory."""
    town = Town.locate(getattr(args, "town", None))
    if not town.looks_like_a_town():
        raise NotFound(f"{town.root} is not a town: it has none of plugins/, settings/, mayor/town.json, city.toml or .gtui/;"
                       f" make it one with: gtui init {town.root}")
    return town


def cmd_init(args: argparse.Namespace) -> int:
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


def control_room(args: argparse.Namespace) -> int:
    """``gtui`` alone: the TUI, which needs a terminal; a pipe gets a pointer to ``--once``."""
    town = locate_town(args)
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise UsageError("the control room needs a terminal; for a headless patrol use 'gtui --once' (add --json for programs)")
    from gtui.cli.dispatching import KENNEL_ARGV
    from gtui.tui.app import GtuiApp
    from gtui.tui.gc_tuning import GcTuning, share_malloc_arenas

    # Textual sizes itself with shutil.get_terminal_size(), which prefers COLUMNS and LINES when they are
    # exported: a stale pair would draw the control room at the wrong size and ignore every resize.
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)
    read_only = bool(getattr(args, "read_only", False))
    share_malloc_arenas()  # the worker threads' freed memory serves them all, not each its own
    with GcTuning() as gc_tuning:  # start-up's objects are frozen out of the collector's scans once they are on screen
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


def warn(message: str, level: str = "warning") -> None:
    sys.stderr.write(f"gtui: {level}: {terminal.safe(message)}\n")


def _fail(message: str, wants_json: bool) -> int:
    if wants_json:
        sys.stdout.write(json.dumps({"error": message}) + "\n")
    sys.stderr.write(f"gtui: error: {terminal.safe(message)}\n")
    return EXIT_ERROR


def _save_crash(args: argparse.Namespace | None) -> str:
    """Keep the traceback for developers in ``<town>/.gtui/crash/`` instead of on the user's screen."""
    import tempfile
    import traceback

    try:
        directory = Town.locate(getattr(args, "town", None)).state_dir / "crash"
    except GtError:
        directory = Path(tempfile.gettempdir()) / "gtui-crash"
    return save_crash_report(directory, traceback.format_exc())
