"""The command line's one table (:data:`TABLE`): every command's words, help, arguments and how it runs, and the
argparse tree built from it, lazily (a command builds only its own parser).

A :class:`Command` names its handler as ``module:function`` under :mod:`gtui.cli`: a command imports only its own
module (the listings, or the commands that queue runs and the kennel's).

The commands a Deacon and scripts run most (``--once``, the listings) take
only options written as :class:`Option` records, and :func:`quick_parse`
reads such a line without argparse: importing it, building its parsers and
looking up their translated words cost a command without a kennel about
4 ms, a tenth of ``escalate list``.  Any other line (a positional, an
abbreviation, ``--help``, a mistake) goes to argparse, which says what is
wrong; a property test holds both to the same reading.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from enum import Enum
from functools import cache
from types import SimpleNamespace

from gtcore.core.errors import GtError
from gtcore.model import SEVERITIES, TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from datetime import date
    from typing import Any, NoReturn

    from gtui.cli import Context

    Builder = Callable[[argparse.ArgumentParser], None]
    Arguments = argparse.Namespace | SimpleNamespace  # what a command line reads as: argparse's, or quick_parse's
    Choices = dict[str, tuple[str, "Builder | Choices"]]

EXIT_ERROR = 2  # what the command line says for "could not": a usage mistake, an error of gtui or of its input


class UsageError(GtError):
    """The command line itself is wrong."""


@cache
def _parser_class() -> type[argparse.ArgumentParser]:
    """argparse's parser that reports usage mistakes as one line instead of a usage dump, and its help formatter minus
    its ``import shutil`` (it asks for the terminal's width on every argument); made when a line first needs argparse."""
    import argparse

    class Formatter(argparse.HelpFormatter):
        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None) -> None:
            if width is None:
                try:
                    width = min(os.get_terminal_size().columns, 140) - 2
                except OSError:
                    width = 100
            super().__init__(prog, indent_increment, max_help_position, width)

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", Formatter)
            super().__init__(*args, **kwargs)

        def error(self, message: str) -> NoReturn:
            raise UsageError(f"{message} (see '{self.prog} --help')")

    return Parser


class Kind(Enum):
    """How an :class:`Option` reads, and what a line that does not give it holds."""

    FLAG = "flag"  # --all: True when given, else False
    GIVEN_FLAG = "given flag"  # --json: True when given, else absent (so it may stand before or after the verb)
    VALUE = "value"  # --to X: X, else None
    GIVEN_VALUE = "given value"  # --town X: X, else absent
    VALUES = "values"  # --event X, repeatable: [X, ...], else []


class Option:
    """One option written once: argparse is built from it, and :func:`quick_parse` reads it.  ``choices``: the words it
    takes, in any case (it holds them lowercased)."""

    __slots__ = ("choices", "dest", "flag", "help", "kind", "metavar")

    def __init__(self, flag: str, kind: Kind, help: str, metavar: str | None = None, choices: tuple[str, ...] = ()) -> None:
        self.flag, self.kind, self.help, self.metavar, self.choices = flag, kind, help, metavar, choices
        self.dest = flag[2:].replace("-", "_")

    @property
    def takes_value(self) -> bool:
        return self.kind in (Kind.VALUE, Kind.GIVEN_VALUE, Kind.VALUES)

    def default(self) -> object:
        """What a line without it holds (:data:`ABSENT`: nothing)."""
        return {Kind.FLAG: False, Kind.VALUE: None, Kind.VALUES: []}.get(self.kind, ABSENT)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        import argparse

        default = self.default()
        kwargs: dict[str, Any] = {"help": self.help, "default": argparse.SUPPRESS if default is ABSENT else default}
        if self.takes_value:
            kwargs["metavar"] = self.metavar
        if self.kind is Kind.VALUES:
            kwargs["action"] = "append"
        elif not self.takes_value:
            kwargs["action"] = "store_true"
        if self.choices:
            kwargs.update(type=str.lower, choices=self.choices)
        parser.add_argument(self.flag, **kwargs)


ABSENT = object()  # an option's default that leaves it out of what the line reads as
TOWN = Option("--town", Kind.GIVEN_VALUE, "town root, or a Gas City city's (default: $GT_TOWN_ROOT, $GT_ROOT, $GT_TOWN,"
              " $GC_CITY, the town or city above the working directory, else ~/gt)", "PATH")
READ_ONLY = Option("--read-only", Kind.GIVEN_FLAG, "never write: the ledger is opened read-only and commands that would write refuse")
JSON = Option("--json", Kind.GIVEN_FLAG, 'print JSON (errors too: {"error": ...})')
COMMON = (TOWN, READ_ONLY, JSON)
"""Options every command takes, before or after its verb."""
TOP = (*COMMON,
       Option("--once", Kind.FLAG, "run one headless patrol: queue the open plugins' runs for the kennel, report, return at once"),
       Option("--event", Kind.VALUES, "with --once: emit this event first (repeatable)", "NAME"),
       Option("--wait", Kind.FLAG, "with --once: wait for the runs it queued and report their results"))
"""The options of ``gtui`` itself (``--once``'s among them)."""


def _common(parser: argparse.ArgumentParser, *, json: bool = True) -> None:
    """Options every command takes (:data:`COMMON`), absent unless given, so they may stand before or after the verb."""
    for option in COMMON if json else (TOWN, READ_ONLY):
        option.add_to(parser)


def _named(parser: argparse.ArgumentParser, what: str = "the plugin's name (see gtui plugin list)") -> None:
    parser.add_argument("name", help=what)


def _init_parser(init: argparse.ArgumentParser) -> None:
    init.add_argument("path", nargs="?", default=".", help="the town's root directory (default: the working directory)")
    _common(init)


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
    import argparse

    run.add_argument("--patrol", action="store_true", help="also patrol every patrol_interval: a town with no Deacon runs from it")
    run.add_argument("--autostarted", action="store_true", help=argparse.SUPPRESS)  # started by a command: detach, exit when idle
    _common(run, json=False)


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


ESCALATE_LIST = (Option("--all", Kind.FLAG, "closed ones too"),
                 Option("--severity", Kind.VALUE, "only this severity (low, medium, high, critical)", "S", SEVERITIES),
                 Option("--stale", Kind.FLAG, "only stale ones"), *COMMON)
MAIL_LIST = (Option("--to", Kind.VALUE, "only mail to this address (mayor, <rig>/witness, ...)", "TARGET"), *COMMON)
KENNEL_STOP = (Option("--drain", Kind.FLAG, "take nothing new and exit when the runs in flight end"), *COMMON)


class Command:
    """One command of the command line, in one place.

    A plain class, not a :class:`~gtcore.core.records.Record`: the table is
    written with keywords, and a record's first keyword construction compiles
    its signature, which would wake the compiler in every command's start-up.
    """

    __slots__ = ("arguments", "dry_run", "help", "honours_read_only", "reads", "run", "settings_as_written", "words")

    def __init__(self, words: tuple[str, ...], help: str, arguments: Builder | tuple[Option, ...], run: str = "", *,
                 reads: bool = False, settings_as_written: bool = False, dry_run: bool = False,
                 honours_read_only: bool = False) -> None:
        self.words = words  # ("plugin", "list"); ("stale",): the words that name it
        self.help = help
        self.arguments = arguments  # its options (then quick_parse reads its lines), or what adds its arguments to argparse
        self.run = run  # its handler, "module:function" under gtui.cli ("": init, which makes the town and takes no Context)
        self.reads = reads  # its ledger opens read-only (no lock, no file created), and --read-only lets it run
        self.settings_as_written = settings_as_written  # a broken gtui.toml stops it (gt stale on defaults would say nothing)
        self.dry_run = dry_run  # it writes nothing with --dry-run, so --read-only lets that run
        self.honours_read_only = honours_read_only  # it runs with --read-only and then writes nothing (--once)

    def __repr__(self) -> str:
        return f"Command({' '.join(self.words) or '--once'})"

    def build(self, parser: argparse.ArgumentParser) -> None:
        """Its arguments, added to its argparse parser."""
        if callable(self.arguments):
            self.arguments(parser)
            return
        for option in self.arguments:
            option.add_to(parser)

    def handler(self) -> Callable[[Context], int]:
        """Its function, imported now (a listing never imports the commands that queue runs)."""
        module, _, name = self.run.partition(":")
        return getattr(__import__(f"gtui.cli.{module}", fromlist=(name,)), name)  # type: ignore[no-any-return]


GROUPS = {
    "plugin": "list, inspect and run plugins",
    "dog": "the dogs that run plugins",
    "kennel": "the process that executes every run: gtui kennel [--patrol] | status | stop [--drain]",
    "escalate": "raise and manage escalations (gtui escalate WORDS... -s SEVERITY)",
    "mail": "mail beads (escalations routed to mail:<target>, gt mail send)",
    "event": "town events (event gates listen for them)",
    "ledger": "the town's ledger",
}
"""The help of each command that takes a verb."""

TABLE = (
    Command(("init",), "make PATH a town gtui can run: plugins/ and settings/gtui.toml", _init_parser),
    Command(("plugin", "list"), "every plugin with its gate and last run", COMMON, "commands:cmd_plugin_list", reads=True),
    Command(("plugin", "show"), "one plugin in full", _plugin_show, "commands:cmd_plugin_show", reads=True),
    Command(("plugin", "history"), "recent runs of a plugin, then its digested days", _plugin_history, "commands:cmd_plugin_history",
            reads=True),
    Command(("plugin", "run"), "run a plugin now, whatever its gate, and follow it to its result (--detach: return at once)",
            _plugin_run, "dispatching:cmd_plugin_run"),
    Command(("plugin", "digest"), "squash a past day's runs into its digest (default: yesterday, UTC)", _plugin_digest,
            "commands:cmd_plugin_digest", dry_run=True),
    Command(("plugin", "enable"), "resume a paused plugin", _plugin_toggle, "commands:cmd_plugin_enable"),
    Command(("plugin", "disable"), "pause a plugin (it stops opening by itself)", _plugin_toggle, "commands:cmd_plugin_disable"),
    Command(("plugin", "log"), "a run's log (default: the plugin's latest run)", _plugin_log, "commands:cmd_plugin_log", reads=True),
    Command(("dog", "list"), "every dog, idle or working, in any gtui process on the town", COMMON, "commands:cmd_dog_list",
            reads=True),
    Command(("dog", "dispatch"), "queue a run of a plugin for a dog now and return with its id", _dog_dispatch,
            "dispatching:cmd_dog_dispatch"),
    Command(("kennel", "run"), "run the kennel in the foreground (for systemd, tmux, a supervisor)", _kennel_run,
            "dispatching:cmd_kennel_run"),
    Command(("kennel", "status"), "the town's kennels: host, pid, heartbeat, dogs, runs", COMMON,
            "dispatching:cmd_kennel_status", reads=True),
    Command(("kennel", "stop"), "stop this host's kennel (its runs are stopped and recorded), or drain it", KENNEL_STOP,
            "dispatching:cmd_kennel_stop"),
    Command(("escalate", "raise"), "raise an escalation: gtui escalate SUBJECT WORDS... (the verb may be left out)", _escalate_raise,
            "commands:cmd_escalate_raise", dry_run=True),
    Command(("escalate", "list"), "open and acknowledged escalations", ESCALATE_LIST, "commands:cmd_escalate_list", reads=True),
    Command(("escalate", "ack"), "acknowledge: it stops re-escalating", _escalate_one, "commands:cmd_escalate_ack"),
    Command(("escalate", "show"), "one escalation with deliveries and history", _escalate_one, "commands:cmd_escalate_show",
            reads=True),
    Command(("escalate", "close"), "close with a reason", _escalate_close, "commands:cmd_escalate_close"),
    Command(("escalate", "stale"), "re-escalate stale escalations now", _escalate_stale, "commands:cmd_escalate_stale", dry_run=True),
    Command(("mail", "list"), "mail, newest first", MAIL_LIST, "commands:cmd_mail_list", reads=True),
    Command(("stale",), "is a binary of [[stale.binaries]] behind its repository? (Gas Town's gt stale)", _stale_parser,
            "commands:cmd_stale", reads=True, settings_as_written=True),
    Command(("report",), "inside a plugin run: report its result and summary (like bd create -l type:plugin-run)", _report_parser,
            "commands:cmd_report"),
    Command(("event", "emit"), "record that an event happened", _event_emit, "commands:cmd_event_emit"),
    Command(("ledger", "copy"), "copy it, runs' logs included, into an empty PostgreSQL ledger every host can share", _ledger_copy,
            "commands:cmd_ledger_copy"),
)
ONCE = Command((), "one headless patrol (gtui --once)", COMMON, "dispatching:cmd_once", honours_read_only=True)
BY_WORDS = {(command.words[0], command.words[1] if len(command.words) > 1 else None): command for command in TABLE}
DEFAULT_VERBS = {"escalate": "raise", "kennel": "run"}
"""Commands whose verb may be left out: ``gtui escalate SUBJECT`` raises, ``gtui kennel`` runs the kennel."""


def choices(table: Sequence[Command] = TABLE) -> Choices:
    """The argparse tree of ``table``: each command's help and arguments, or its verbs' (commands in table order)."""
    tree: Choices = {}
    for command in table:
        if len(command.words) == 1:
            tree[command.words[0]] = (command.help, command.build)
        else:
            verbs = tree.setdefault(command.words[0], (GROUPS[command.words[0]], {}))[1]
            verbs[command.words[1]] = (command.help, command.build)  # type: ignore[index]
    return tree


COMMAND_PARSERS = choices()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given ``argv``, only the command and verb it names are built.

    Every parser argparse makes costs (its help option, its translated
    words): building all twenty-odd of them cost more than an idle patrol's
    own work.  A command builds its own parser and its own verb's; an unknown
    word gets the names of the choices, so argparse can say what they are;
    ``--help`` (or no ``argv``) builds all.
    """
    parser_class = _parser_class()
    parser = parser_class(prog="gtui", description="Gas Town plugin engine and control room. Without a command: the control room.")
    for option in TOP:
        option.add_to(parser)
    everything = argv is None or "-h" in argv or "--help" in argv
    _add_choices(parser, parser_class, "command", "COMMAND", COMMAND_PARSERS, None if everything else list(argv or ()))
    return parser


def _add_choices(parser: argparse.ArgumentParser, parser_class: type[argparse.ArgumentParser], dest: str, metavar: str,
                 choices: Choices, argv: list[str] | None) -> None:
    """Subcommands (or verbs) of ``parser``: all of them when ``argv`` is None, else the one its next word names.

    No command word at all (``gtui --once``): no subparsers, ``command`` is
    None.  A missing or unknown verb: the verbs' names, for argparse to list.
    """
    at = None if argv is None else _word_index(argv)
    if argv is not None and at is None and dest == "command":
        parser.set_defaults(command=None)
        return
    word = None if argv is None or at is None else argv[at]
    sub = parser.add_subparsers(dest=dest, required=dest != "command", parser_class=parser_class, metavar=metavar)
    for name, (text, build) in choices.items():
        if argv is not None and word in choices and name != word:
            continue
        child = sub.add_parser(name, help=text)
        if argv is None or name == word:
            rest = None if argv is None or at is None else argv[at + 1:]
            if isinstance(build, dict):
                _add_choices(child, parser_class, "verb", "VERB", build, rest)
            else:
                build(child)


def quick_parse(argv: Sequence[str]) -> SimpleNamespace | None:
    """``argv`` read as argparse reads it, without argparse, when it is ``gtui`` or one of the commands whose arguments
    are all :class:`Option` records, with only its words and options spelled out in full; None for any other line
    (argparse reads those, and says what is wrong with one)."""
    values = _defaults(TOP)
    at = _read_options(argv, 0, TOP, values)
    if at is None:
        return None
    if at == len(argv):
        return SimpleNamespace(**values, command=None)
    word = argv[at]
    verb = argv[at + 1] if word in GROUPS and at + 1 < len(argv) else None
    command = BY_WORDS.get((word, verb))
    if command is None or callable(command.arguments):
        return None
    values.update(_defaults(command.arguments), command=word, **({"verb": verb} if verb is not None else {}))
    if _read_options(argv, at + len(command.words), command.arguments, values) != len(argv):
        return None  # a word after the command's own, or an option it cannot read
    return SimpleNamespace(**values)


def _defaults(options: tuple[Option, ...]) -> dict[str, object]:
    return {option.dest: default for option in options if (default := option.default()) is not ABSENT}


def _read_options(argv: Sequence[str], at: int, options: tuple[Option, ...], values: dict[str, object]) -> int | None:
    """Read ``options`` from ``argv[at:]`` into ``values`` up to the next word; where it is (None: a token that is
    none of them, or a value argparse would read otherwise)."""
    while at < len(argv) and argv[at].startswith("-"):
        name, has_value, value = argv[at].partition("=")
        at += 1
        option = next((option for option in options if option.flag == name), None)
        if option is None or (has_value and not option.takes_value):
            return None
        if option.takes_value and not has_value:
            if at == len(argv) or argv[at].startswith("-"):
                return None
            value, at = argv[at], at + 1
        if option.choices:
            value = value.lower()
            if value not in option.choices:
                return None
        if option.kind is Kind.VALUES:
            values[option.dest] = [*values[option.dest], value]  # type: ignore[misc]
        else:
            values[option.dest] = value if option.takes_value else True
    return at


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


def _with_default_verb(argv: list[str]) -> list[str]:
    """``gtui escalate SUBJECT ...`` means ``gtui escalate raise SUBJECT ...``; ``gtui kennel [--patrol]`` means ``gtui kennel run``."""
    index = _word_index(argv)  # where the command is (an option's value may be the same word: --town escalate escalate list)
    command = None if index is None else argv[index]
    if index is None or command not in DEFAULT_VERBS:
        return argv
    default = DEFAULT_VERBS[command]
    verbs = [words[1] for words in BY_WORDS if words[0] == command]
    following = argv[index + 1] if index + 1 < len(argv) else None
    if following not in (*verbs, "-h", "--help") and (following is not None or command == "kennel"):
        return [*argv[: index + 1], default, *argv[index + 1:]]
    return argv


def _date(text: str) -> date:
    import argparse
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-23, not {text!r}") from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)
