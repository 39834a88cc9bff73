"""The ``gtui`` command line: one entry point, every listing with ``--json``.

Errors reach the user as one line on stderr (and as ``{"error": ...}`` on
stdout with ``--json``) with exit status 2; a traceback never does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from gtcore.clock import iso
from gtcore.digest import digests, make_digest, utc_day
from gtcore.discovery import discover
from gtcore.engine import Engine
from gtcore.errors import GtError, NotFound, brief, save_crash_report
from gtcore.events import Event, OutputLine
from gtcore.ledger import Ledger
from gtcore.model import Report
from gtcore.plugins import SEVERITIES
from gtcore.report import dogs_from_ledger, plugin_json, run_json
from gtcore.settings import load_settings
from gtcore.stale import pick_binary
from gtcore.town import Town
from gtui import render, terminal
from gtui.escalate import escalation_outcome
from gtui.shims import flags
from gtui.shims.bin import plugin_bin
from gtui.shims.context import run_context

if TYPE_CHECKING:
    from rich.console import Console

EXIT_ERROR = 2


class UsageError(GtError):
    """The command line itself is wrong."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as one line instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common(parser: argparse.ArgumentParser, *, json: bool = True) -> None:
    """Options every command takes; SUPPRESS lets them stand before or after the verb."""
    parser.add_argument("--town", default=argparse.SUPPRESS,
                        help="town root (default: $GT_TOWN_ROOT, $GT_ROOT, $GT_TOWN, the town above the working directory, else ~/gt)")
    if json:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gtui", description="Gas Town plugin engine and control room.")
    _common(parser)
    parser.add_argument("--once", action="store_true", help="run one headless patrol, wait for its runs, print the report")
    parser.add_argument("--event", action="append", default=[], metavar="NAME", help="with --once: emit this event first")
    parser.add_argument("--read-only", action="store_true", help="control room that never writes (no runs, no patrol, no acks)")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    plugin = commands.add_parser("plugin", help="list, inspect and run plugins")
    plugin_verbs = plugin.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    _common(plugin_verbs.add_parser("list", help="every plugin with its gate and last run"))
    show = plugin_verbs.add_parser("show", help="one plugin in full")
    show.add_argument("name")
    _common(show)
    history = plugin_verbs.add_parser("history", help="recent runs of a plugin")
    history.add_argument("name")
    history.add_argument("--limit", type=_positive_int, default=20)
    _common(history)
    run = plugin_verbs.add_parser("run", help="run a plugin now, whatever its gate")
    run.add_argument("name")
    run.add_argument("--force", action="store_true", help="run even if disabled or paused")
    _common(run)
    digest = plugin_verbs.add_parser("digest", help="squash a past day's runs into its digest (default: yesterday, UTC)")
    day = digest.add_mutually_exclusive_group()
    day.add_argument("--yesterday", action="store_true")
    day.add_argument("--date", type=_date, metavar="YYYY-MM-DD")
    digest.add_argument("--dry-run", action="store_true", help="say what would be squashed, change nothing")
    _common(digest)
    for verb, text in (("enable", "resume a paused plugin"), ("disable", "pause a plugin (it stops opening by itself)")):
        toggle = plugin_verbs.add_parser(verb, help=text)
        toggle.add_argument("name")
        toggle.add_argument("--reason", default="")
        _common(toggle)

    dog = commands.add_parser("dog", help="the dogs that run plugins")
    dog_verbs = dog.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    _common(dog_verbs.add_parser("list", help="every dog, idle or working"))
    dispatch = dog_verbs.add_parser("dispatch", help="hand a plugin to a dog now and wait for its run")
    dispatch.add_argument("--plugin", required=True)
    dispatch.add_argument("--rig")
    _common(dispatch)

    _escalation_parsers(commands)

    stale = commands.add_parser("stale", help="is a binary of [[stale.binaries]] behind its repository? (Gas Town's gt stale)")
    stale.add_argument("name", nargs="?", help="which [[stale.binaries]] entry (default: the one named gt, else the first)")
    flags.add_arguments(stale, flags.STALE)
    _common(stale, json=False)

    report = commands.add_parser("report", help="inside a plugin run: report its result and summary (like bd create -l type:plugin-run)")
    report.add_argument("result", help="success, failure, skipped, warning or check-only")
    report.add_argument("summary", help="one line for the feed and the plugin table")
    report.add_argument("--detail", default="", help="more words, shown in details and history")
    _common(report)

    event = commands.add_parser("event", help="town events (event gates listen for them)")
    event_verbs = event.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    emit = event_verbs.add_parser("emit", help="record that an event happened")
    emit.add_argument("name")
    _common(emit)
    return parser


ESCALATE_VERBS = ("raise", "list", "ack", "close", "show", "stale")


def _escalation_parsers(commands: Any) -> None:
    escalate = commands.add_parser("escalate", help="raise and manage escalations (gtui escalate SUBJECT --severity S)")
    verbs = escalate.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    raise_ = verbs.add_parser("raise", help="raise an escalation: gtui escalate SUBJECT WORDS... (the verb may be left out)")
    flags.add_arguments(raise_, flags.ESCALATE)  # Gas Town's gt escalate, flag for flag
    _common(raise_, json=False)
    listing = verbs.add_parser("list", help="open and acknowledged escalations")
    listing.add_argument("--all", action="store_true", help="closed ones too")
    listing.add_argument("--severity", choices=SEVERITIES)
    listing.add_argument("--stale", action="store_true", help="only stale ones")
    _common(listing)
    for verb, text in (("ack", "acknowledge: it stops re-escalating"), ("show", "one escalation with deliveries and history")):
        one = verbs.add_parser(verb, help=text)
        one.add_argument("id")
        _common(one)
    close = verbs.add_parser("close", help="close with a reason")
    close.add_argument("id")
    close.add_argument("--reason", required=True)
    _common(close)
    stale = verbs.add_parser("stale", help="re-escalate stale escalations now")
    stale.add_argument("--dry-run", action="store_true")
    _common(stale)

    mail = commands.add_parser("mail", help="mail beads (escalations routed to mail:<target>)")
    mail_verbs = mail.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    mail_list = mail_verbs.add_parser("list", help="mail, newest first")
    mail_list.add_argument("--to")
    _common(mail_list)


def _with_default_verb(argv: list[str]) -> list[str]:
    """``gtui escalate SUBJECT ...`` means ``gtui escalate raise SUBJECT ...``."""
    index, takes_value = 0, {"--town", "--event"}
    while index < len(argv):
        token = argv[index]
        if token in takes_value:
            index += 2
            continue
        if token.startswith("-"):
            index += 1
            continue
        if token == "escalate" and index + 1 < len(argv) and argv[index + 1] not in (*ESCALATE_VERBS, "-h", "--help"):
            return [*argv[: index + 1], "raise", *argv[index + 1:]]
        return argv
    return argv


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-23, not {text!r}") from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


class Context:
    """What a command needs: the town, its ledger (opened on demand) and the output."""

    def __init__(self, args: argparse.Namespace, *, reads_only: bool = False) -> None:
        self.args = args
        self.json = bool(getattr(args, "json", False))
        self.town = Town.locate(getattr(args, "town", None))
        self.reads_only = reads_only or bool(getattr(args, "read_only", False))
        self._console: Console | None = None
        self._ledger: Ledger | None = None
        self._engine: Engine | None = None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = self._engine.ledger if self._engine else Ledger(self.town.ledger_path, readonly=self.reads_only)
        return self._ledger

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            bins = () if self.reads_only else plugin_bin(self.town)
            self._engine = Engine(self.town, readonly=self.reads_only, adopt_orphans=not self.reads_only, plugin_bin=bins)
        return self._engine

    @property
    def console(self) -> Console:
        """Rich, for people only: a ``--json`` command never imports it."""
        if self._console is None:
            self._console = terminal.console()
        return self._console

    def say(self, *parts: object | tuple[object, str]) -> None:
        """Print one line for people, every part made safe first."""
        self.console.print(terminal.text(*parts))

    def emit(self, payload: dict[str, Any], human: Callable[[], None]) -> None:
        """Print ``payload`` as JSON or call ``human`` to draw it for people."""
        if self.json:
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        else:
            human()


def cmd_plugin_list(ctx: Context) -> int:
    plugins = discover(ctx.town)
    summary = ctx.ledger.plugin_summary()
    payload = {
        "town": str(ctx.town.root),
        "plugins": [plugin_json(plugin, summary.get(plugin.name)) for plugin in plugins.plugins],
        "invalid": [invalid.to_json() for invalid in plugins.invalid],
        "warnings": plugins.warnings,
    }
    ctx.emit(payload, lambda: render.plugin_list(ctx.console, plugins, summary, time.time()))
    return 0


def cmd_plugin_show(ctx: Context) -> int:
    plugin = discover(ctx.town).require(ctx.args.name, ctx.town)
    stats = ctx.ledger.plugin_summary().get(plugin.name)
    payload = {**plugin_json(plugin, stats), "instructions": plugin.instructions, "warnings": list(plugin.warnings)}
    ctx.emit(payload, lambda: render.plugin_detail(ctx.console, plugin, stats, time.time()))
    return 0


def cmd_plugin_history(ctx: Context) -> int:
    name = ctx.args.name
    runs = ctx.ledger.runs(name, limit=ctx.args.limit)
    days = digests(ctx.ledger, name, limit=ctx.args.limit)
    if not runs and not days and discover(ctx.town).get(name) is None:
        raise NotFound(f"no plugin named {name!r} in town {ctx.town.root}, and no runs of it on the ledger")
    payload = {"plugin": name, "runs": [run_json(run) for run in runs], "digests": days}
    ctx.emit(payload, lambda: render.run_history(ctx.console, name, runs, days, time.time()))
    return 0


def cmd_once(ctx: Context) -> int:
    engine = ctx.engine
    for name in ctx.args.event:
        engine.emit_event(name, source="gtui --once")
    if not ctx.json:
        _follow_output(ctx)
    report = engine.patrol_once(wait=True)
    engine.close()
    ctx.emit(report.to_json(), lambda: render.patrol_report(ctx.console, report))
    for problem in report.problems:
        _warn(str(problem), problem.level)
    return 1 if report.failed or report.undeliverable else 0


def _follow_output(ctx: Context) -> None:
    """Echo runs' output lines as they come, for a person watching."""

    def show(event: Event) -> None:
        if isinstance(event, OutputLine):
            ctx.say((f"{event.plugin} | ", "dim"), event.line)

    ctx.engine.bus.subscribe(show)


def _run_and_report(ctx: Context, name: str, *, force: bool = False, rig: str | None = None) -> int:
    if not ctx.json:
        _follow_output(ctx)
    outcome = ctx.engine.run_plugin(name, force=force, rig=rig).result()
    ctx.engine.close()
    if outcome.run is None:
        raise GtError(f"plugin {name} did not run: {outcome.refused}")
    run = outcome.run
    ctx.emit(run_json(run), lambda: render.run_result(ctx.console, run))
    return 1 if run.result in ("failure", "timeout") else 0


def cmd_plugin_run(ctx: Context) -> int:
    return _run_and_report(ctx, ctx.args.name, force=ctx.args.force)


def cmd_dog_dispatch(ctx: Context) -> int:
    return _run_and_report(ctx, ctx.args.plugin, rig=ctx.args.rig)


def _toggle(ctx: Context, paused: bool) -> int:
    name = ctx.args.name
    changed = ctx.engine.set_paused(name, paused, ctx.args.reason)
    plugin = ctx.engine.plugin(name)
    state = "paused" if paused else "resumed"
    note = "" if changed else f" (it was already {state})"
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
    dogs = dogs_from_ledger(ctx.ledger, load_settings(ctx.town.settings_dir).dogs, time.time())
    ctx.emit({"dogs": dogs}, lambda: render.dog_list(ctx.console, dogs))
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
    reason = sys.stdin.read().rstrip("\n") if args.stdin else args.reason or ""
    run = run_context()
    source = args.source or (f"plugin:{run.plugin}" if run and run.plugin else "cli")
    related = args.related or (run.run_id if run else None)
    service = ctx.engine.escalations
    if args.dry_run:
        return _escalate_dry_run(ctx, subject, args.severity, source)
    escalation, created = service.raise_(subject, args.severity, body=reason, source=source, related=related, now=time.time())
    outcome = escalation_outcome(escalation, created, service)
    ctx.emit(outcome.payload, lambda: [ctx.say(line) for line in outcome.lines])
    for warning in outcome.warnings:
        _warn(warning, "error" if outcome.code else "warning")
    return outcome.code


def _escalate_dry_run(ctx: Context, subject: str, severity: str, source: str) -> int:
    route = ctx.engine.escalations.settings().routes.get(severity.lower())
    if route is None:
        raise UsageError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    payload = {"dry_run": True, "subject": subject, "severity": severity.lower(), "source": source, "actions": list(route)}
    ctx.emit(payload, lambda: ctx.say(f"would raise ({severity.lower()}, from {source}) {subject}: routed to {', '.join(route)};"
                                      " nothing written, nothing sent"))
    return 0


def cmd_escalate_list(ctx: Context) -> int:
    now = time.time()
    service = ctx.engine.escalations
    settings = service.settings()
    found = service.list(include_closed=ctx.args.all, severity=ctx.args.severity, stale_only=ctx.args.stale,
                         now=now, settings=settings)
    payload = {"escalations": [item.to_json(settings, now) for item in found]}
    ctx.emit(payload, lambda: render.escalation_list(ctx.console, found, settings, now))
    return 0


def cmd_escalate_show(ctx: Context) -> int:
    now = time.time()
    service = ctx.engine.escalations
    escalation, settings = service.get(ctx.args.id), service.settings()
    ctx.emit(escalation.to_json(settings, now), lambda: render.escalation_detail(ctx.console, escalation, settings, now))
    return 0


def cmd_escalate_ack(ctx: Context) -> int:
    escalation = ctx.engine.escalations.ack(ctx.args.id, now=time.time())
    ctx.emit({"id": escalation.ref, "status": escalation.status},
             lambda: ctx.say(f"{escalation.ref} acknowledged"))
    return 0


def cmd_escalate_close(ctx: Context) -> int:
    escalation = ctx.engine.escalations.close(ctx.args.id, reason=ctx.args.reason, now=time.time())
    ctx.emit({"id": escalation.ref, "status": escalation.status},
             lambda: ctx.say(f"{escalation.ref} closed"))
    return 0


def cmd_escalate_stale(ctx: Context) -> int:
    moves = ctx.engine.escalations.reescalate_stale(time.time(), dry_run=ctx.args.dry_run)
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
    label = f"to:{ctx.args.to}" if ctx.args.to else None
    mail = ctx.ledger.beads("mail", label=label, limit=200)
    payload = {"mail": [{"id": item.ref, "to": item.data.get("to"), "from": item.data.get("from"), "subject": item.title,
                         "body": item.body, "at": iso(item.created_at)} for item in mail]}
    ctx.emit(payload, lambda: render.mail_list(ctx.console, mail, time.time()))
    return 0


def cmd_plugin_digest(ctx: Context) -> int:
    now = time.time()
    day = ctx.args.date or (utc_day(now) - timedelta(days=1))
    names = [plugin.name for plugin in discover(ctx.town).plugins if plugin.tracking.digest]
    result = make_digest(ctx.ledger, day, names, now=now, dry_run=ctx.args.dry_run)
    ctx.emit(result.to_json(), lambda: render.digest_result(ctx.console, result))
    return 0


def cmd_stale(ctx: Context) -> int:
    """Gas Town's convention: ``--json`` prints one flat object and exits 0 (an error too, in its ``error``);
    ``--quiet`` prints nothing and exits 0 stale, 1 fresh, 2 error; plain text exits 0 (2 on error)."""
    settings = load_settings(ctx.town.settings_dir)
    status = pick_binary(settings.stale_binaries, ctx.town, ctx.args.name)
    if ctx.args.quiet:
        return EXIT_ERROR if status.error else 0 if status.stale else 1
    if ctx.json:
        sys.stdout.write(json.dumps(status.gastown_json(), indent=2) + "\n")
        return 0
    render.stale_report(ctx.console, [status])
    return EXIT_ERROR if status.error else 0


def cmd_report(ctx: Context) -> int:
    """A plugin's own report of its run, for plugins that are not Gas Town's (Gas Town's use ``bd create``)."""
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
    ("plugin", "run"): cmd_plugin_run,
    ("plugin", "enable"): cmd_plugin_enable,
    ("plugin", "disable"): cmd_plugin_disable,
    ("dog", "list"): cmd_dog_list,
    ("dog", "dispatch"): cmd_dog_dispatch,
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
}


READ_COMMANDS = {cmd_plugin_list, cmd_plugin_show, cmd_plugin_history, cmd_dog_list, cmd_escalate_list, cmd_escalate_show,
                 cmd_mail_list, cmd_stale}  # their ledger opens read-only: no lock, no file created, works on a read-only .gtui


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gtui`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    args = None
    try:
        args = build_parser().parse_args(_with_default_verb(argv))
        command = COMMANDS.get((args.command, getattr(args, "verb", None)))
        if args.once:
            command = cmd_once
        elif command is None:
            return control_room(args)
        return command(Context(args, reads_only=command in READ_COMMANDS))
    except GtError as exc:
        return _fail(str(exc), wants_json)
    except KeyboardInterrupt:
        return _fail("interrupted", wants_json)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: never a traceback
        return _fail(f"internal error (a bug in gtui): {type(exc).__name__}: {brief(exc, 200)} ({_save_crash(args)})", wants_json)


def control_room(args: argparse.Namespace) -> int:
    """``gtui`` alone: the TUI, which needs a terminal; a pipe gets a pointer to ``--once``."""
    town = Town.locate(getattr(args, "town", None))
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise UsageError("the control room needs a terminal; for a headless patrol use 'gtui --once' (add --json for programs)")
    from gtui.app import GtuiApp

    # Textual sizes itself with shutil.get_terminal_size(), which prefers COLUMNS and LINES when they are
    # exported: a stale pair would draw the control room at the wrong size and ignore every resize.
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)
    GtuiApp(town, read_only=args.read_only, adopt_orphans=not args.read_only).run()
    return 0


def _warn(message: str, level: str = "warning") -> None:
    sys.stderr.write(f"gtui: {level}: {terminal.safe(message)}\n")


def _fail(message: str, wants_json: bool) -> int:
    if wants_json:
        sys.stdout.write(json.dumps({"error": message}) + "\n")
    sys.stderr.write(f"gtui: error: {terminal.safe(message)}\n")
    return EXIT_ERROR


def _save_crash(args: argparse.Namespace | None) -> str:
    """Keep the traceback for developers in ``<town>/.gtui/crash/`` instead of on the user's screen."""
    try:
        directory = Town.locate(getattr(args, "town", None)).state_dir / "crash"
    except GtError:
        directory = Path(tempfile.gettempdir()) / "gtui-crash"
    return save_crash_report(directory, traceback.format_exc())
