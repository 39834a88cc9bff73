"""The flags of every plugin-facing command, in one table: the parsers are built from it, and so is docs/gastown.md.

Each :class:`Command` lists its flags as Gas Town (``gt``) and beads
(``bd``) spell them, so a plugin written for Gas Town parses unchanged, and
:meth:`Command.parse` reads a command line as their flag parser (Go's pflag,
under cobra) reads it: a value flag takes the next word whatever it looks
like (``--title -x``), a name is never abbreviated (``--desc`` is unknown),
a switch takes ``=true``/``=false``, ``--`` ends the flags.  A mistake is
:class:`~gtcore.core.errors.Refused`, in pflag's words.  ``python -m
gtui.shims.flags`` prints the tables the docs hold; a test keeps the two in
step.
"""

from __future__ import annotations

import argparse

from gtcore.core.errors import Refused
from gtcore.model import TYPE_CHECKING, Record, readable

if TYPE_CHECKING:  # records, not dataclasses, and no typing at run time: every gt and bd call of a plugin imports this
    from collections.abc import Iterator
    from typing import Any, Literal, NoReturn

    Kind = Literal["value", "switch", "list"]
TRUE, FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")  # Go's strconv.ParseBool


class Flag(Record):
    """One option: its spellings, where it lands, and what it means.

    ``list`` options repeat and split commas (``-l a,b -l c`` is three
    labels), as bd's string slices do.
    ``raw`` values are kept as the bytes were given (a fingerprint is hashed,
    never stored); any other value is made :func:`~gtcore.model.readable`.
    """

    names: tuple[str, ...]
    dest: str
    help: str
    kind: Kind = "value"
    default: Any = None
    metavar: str | None = None
    raw: bool = False

    @property
    def long(self) -> str:
        """The ``--name`` spelling, which every flag has: how :meth:`Command.parse` hands a value on."""
        return next(name for name in self.names if name.startswith("--"))


class Positional(Record):
    dest: str
    help: str
    nargs: str | None = None  # None: exactly one; "?", "*", "+" as argparse


class Parsed(Record):
    """A command line as read: its values (``args``), and how many words no flag or positional took (``strays``)."""

    args: argparse.Namespace
    strays: int


class Command(Record):
    """A plugin-facing command: ``gt escalate``, ``bd create``, ...

    ``strays``: words no flag or positional takes are ignored, as Gas Town
    ignores them (cobra's default for a command that declares no ``Args``);
    otherwise they are refused, as its ``ExactArgs`` and ``MaximumNArgs`` do.
    """

    name: str
    summary: str
    flags: tuple[Flag, ...] = ()
    positionals: tuple[Positional, ...] = ()
    strays: bool = False

    @property
    def tool(self) -> str:
        return self.name.split(" ", 1)[0]

    @property
    def verb(self) -> str:
        return self.name.split(" ", 1)[1]

    def parser(self, parser_class: type[argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
        parser = (parser_class or CommandParser)(prog=self.name, description=self.summary, allow_abbrev=False)
        add_arguments(parser, self)
        return parser

    def parse(self, argv: list[str]) -> Parsed:
        """``argv`` as Gas Town's flag parser reads it (see the module); a mistake is :class:`Refused`."""
        args, extra = self.parser().parse_known_args(pflag_words(self, argv))  # every flag known by now: the rest are words
        extra = [word for word in extra if word != "--"]
        if extra and not self.strays:
            allowed = sum(1 for positional in self.positionals if positional.nargs in (None, "?"))
            raise Refused(f"accepts at most {allowed} arg(s), received {allowed + len(extra)}")
        return Parsed(args, len(extra))


class CommandParser(argparse.ArgumentParser):
    """A usage mistake is :class:`Refused` (one line, exit 1, as gt and bd do), never argparse's exit."""

    def error(self, message: str) -> NoReturn:
        raise Refused(message)


def pflag_words(command: Command, argv: list[str]) -> list[str]:
    """``argv`` respelled so argparse reads it as pflag does: every flag by its long name, a value as ``--long=VALUE``, a
    switch's ``=false`` left out.  A flag pflag does not know, or one that needs a value and has none, is
    :class:`Refused` in pflag's words, at the first one, as pflag stops there."""
    spelled = {name: flag for flag in command.flags for name in flag.names}
    words: list[str] = []
    rest = iter(argv)
    for word in rest:
        if word == "--":
            return [*words, word, *rest]
        if word in ("-h", "--help") or not word.startswith("-") or word == "-":
            words.append(word)
        elif word.startswith("--"):
            words += _long(spelled, word, rest)
        else:
            words += _shorts(spelled, word, rest)
    return words


def _long(spelled: dict[str, Flag], word: str, rest: Iterator[str]) -> list[str]:
    """``--name``, ``--name=VALUE``, or ``--name VALUE`` (the next word, whatever it looks like)."""
    name, equals, value = word.partition("=")
    flag = spelled.get(name)
    if flag is None:
        raise Refused(f"unknown flag: {name}", (name,))
    if flag.kind == "switch":
        return _switch(flag, name, value) if equals else [flag.long]
    given = value if equals else next(rest, None)
    if given is None:
        raise Refused(f"flag needs an argument: {name}", (name,))
    return [f"{flag.long}={given}"]


def _shorts(spelled: dict[str, Flag], word: str, rest: Iterator[str]) -> list[str]:
    """``-q``, ``-qv`` (switches together), ``-sHIGH``, ``-s=HIGH`` or ``-s HIGH``, as pflag's shorthands."""
    words: list[str] = []
    for index, letter in enumerate(word[1:], 2):
        flag, after = spelled.get(f"-{letter}"), word[index:]
        if flag is None:
            raise Refused(f"unknown shorthand flag: {letter!r} in {word}", (f"-{letter}",))
        if flag.kind == "switch":
            if after.startswith("="):
                return words + _switch(flag, f"-{letter}", after[1:])
            words.append(flag.long)
            continue
        given = after[1:] if after.startswith("=") else after or next(rest, None)
        if given is None:
            raise Refused(f"flag needs an argument: {letter!r} in {word}", (f"-{letter}",))
        return [*words, f"{flag.long}={given}"]
    return words


def _switch(flag: Flag, name: str, value: str) -> list[str]:
    if value in TRUE:
        return [flag.long]
    if value in FALSE:
        return []
    raise Refused(f'invalid argument "{value}" for "{name}" flag: strconv.ParseBool: parsing "{value}": invalid syntax', (name,))


def add_arguments(parser: argparse.ArgumentParser, command: Command) -> None:
    """Give ``parser`` the command's positionals and flags, exactly as the table says."""
    for positional in command.positionals:
        nargs: dict[str, Any] = {"nargs": positional.nargs} if positional.nargs else {}  # argparse's keywords: of many types
        parser.add_argument(positional.dest, help=positional.help, type=readable, **nargs)
    for flag in command.flags:
        text: dict[str, Any] = {} if flag.raw else {"type": readable}
        if flag.kind == "switch":
            parser.add_argument(*flag.names, dest=flag.dest, action="store_true", help=flag.help)
        elif flag.kind == "list":
            parser.add_argument(*flag.names, dest=flag.dest, action=_CommaList, default=[], metavar=flag.metavar or "A,B", help=flag.help,
                                **text)
        else:
            parser.add_argument(*flag.names, dest=flag.dest, default=flag.default, metavar=flag.metavar, help=flag.help, **text)


class _CommaList(argparse.Action):
    """A repeatable option whose values may be comma-separated lists."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None) -> None:
        current = list(getattr(namespace, self.dest, None) or [])
        current += [part.strip() for part in str(values).split(",") if part.strip()]
        setattr(namespace, self.dest, current)


def _json() -> Flag:
    return Flag(("--json",), "json", "print JSON", "switch")


ESCALATE = Command("gt escalate", "Raise an escalation (the words are its subject).", (
    Flag(("-s", "--severity"), "severity", "low, medium, high or critical, in any case", default="medium", metavar="S"),
    Flag(("-r", "--reason"), "reason", "why: the escalation's body (several lines allowed)", metavar="R"),
    Flag(("--source",), "source", "who raises it, e.g. plugin:rebuild-gt (inside a run: plugin:<its plugin>)", metavar="SRC"),
    Flag(("--related",), "related", "a related bead or run id (inside a run: the run)", metavar="ID"),
    Flag(("--fingerprint",), "fingerprint", "a stable key: while an escalation with it is open or acknowledged, another is"
         " suppressed (Gas Town's escalation-fp: label)", metavar="KEY", raw=True),
    Flag(("--stdin",), "stdin", "read the reason from standard input", "switch"),
    Flag(("-n", "--dry-run"), "dry_run", "say what would be raised and routed; write and send nothing", "switch"),
    _json(),
), (Positional("words", "the subject", "*"),))

STALE = Command("gt stale", "Is the gt binary behind a build branch of its repository? (Gas Town's exit convention)", (
    Flag(("--json",), "json", "print one flat object, exit 0 (also when skipped or on error, saying so)", "switch"),
    Flag(("-q", "--quiet"), "quiet", "print nothing: exit 0 stale, 1 fresh, 2 skipped or error", "switch"),
), strays=True)

BD_CREATE = Command("bd create", "Record a bead; with type:plugin-run inside a run, the plugin's report of that run.", (
    Flag(("--title",), "title_flag", "the title (or give it as the argument)", metavar="T"),
    Flag(("-t", "--type"), "type", "bead type: task, chore, bug, ...", default="task", metavar="TYPE"),
    Flag(("--ephemeral",), "ephemeral", "a wisp: ephemeral, not synced", "switch"),
    Flag(("-l", "--labels", "--label"), "labels", "labels, comma-separated, repeatable; type:plugin-run,result:X is a run report",
         "list"),
    Flag(("-d", "--description", "--body", "-m", "--message"), "description", "the description (a report's detail)", metavar="D"),
    Flag(("--silent",), "silent", "print only the new id", "switch"),
    _json(),
    Flag(("--wisp-type",), "wisp_type", "wisp classification (patrol, escalation, ...); kept as a label", metavar="W"),
    Flag(("-p", "--priority"), "priority", "priority 0-4 (kept)", metavar="P"),
    Flag(("-a", "--assignee"), "assignee", "assignee (kept)", metavar="A"),
    Flag(("--actor",), "actor", "who creates it (default $BD_ACTOR)", metavar="A"),
), (Positional("title", "the title", "?"),), strays=True)

BD_LIST = Command("bd list", "List beads from the ledger, newest first, as bd's JSON.", (
    _json(),
    Flag(("--all",), "all", "closed ones too, no limit", "switch"),
    Flag(("-l", "--label"), "labels", "must carry ALL these labels (exact), comma-separated and repeatable", "list"),
    Flag(("-s", "--status"), "status", "open, in_progress, closed or all (comma-separated)", metavar="S"),
    Flag(("--created-after",), "created_after", "RFC3339, YYYY-MM-DD, or bd's compact -24h / -7d (no sign: the future)", metavar="T"),
    Flag(("-n", "--limit"), "limit", "at most N (default 50; 0 = no limit)", metavar="N"),
    Flag(("-t", "--type"), "type", "only this bead type", metavar="TYPE"),
    Flag(("--flat",), "flat", "accepted (gtui's list is always flat)", "switch"),
    Flag(("--no-pager",), "no_pager", "accepted (gtui never pages)", "switch"),
), strays=True)

BD_SHOW = Command("bd show", "Show beads as a JSON array.", (_json(),), (Positional("ids", "bead or run ids", "+"),))

BD_CLOSE = Command("bd close", "Close beads (notes; runs are closed by gtui when they end).", (
    Flag(("-r", "--reason", "--resolution", "-m", "--message"), "reason", "why", metavar="R"),
    Flag(("-f", "--force"), "force", "accepted", "switch"),
), (Positional("ids", "bead ids", "+"),))

BD_VERSION = Command("bd version", "Print the version (bd version X.Y.Z ...).", strays=True)

MAIL_SEND = Command("gt mail send", "Send mail: a mail bead gtui mail list shows.", (
    Flag(("-s", "--subject"), "subject", "the subject (required)", metavar="S"),
    Flag(("-m", "--message", "--body"), "message", "the body", metavar="B"),
    Flag(("--stdin",), "stdin", "read the body from standard input", "switch"),
    Flag(("--to",), "to", "the address (instead of the argument)", metavar="ADDR"),
    Flag(("--from",), "sender", "the sender (default $BD_ACTOR)", metavar="ADDR"),
    Flag(("--cc",), "cc", "copies to, repeatable", "list"),
    Flag(("--type",), "type", "notification, task, scavenge or reply", default="notification", metavar="T"),
    Flag(("--priority",), "priority", "0 (urgent) to 4 (kept)", metavar="N"),
    Flag(("--urgent",), "urgent", "priority 0", "switch"),
), (Positional("address", "where to: mayor/, <rig>/witness, ...", "?"),))

RIG_LIST = Command("gt rig list", "The town's rigs.", (_json(),), strays=True)
TOWN_ROOT = Command("gt town root", "Print the town root.", strays=True)
GT_VERSION = Command("gt version", "Print the version (gt version X.Y.Z ...).", (
    Flag(("--short",), "short", "just the version", "switch"),
    Flag(("-v", "--verbose"), "verbose", "accepted", "switch"),
), strays=True)
SESSION_HEALTH = Command("gt session health", "Is a tmux agent session alive (Gas Town's central liveness check, read from tmux"
                         " as it reads it)?", (
    _json(),
    Flag(("--max-inactivity",), "max_inactivity", "a Go duration: idle longer than this is agent-hung (0 disables)", default="0",
         metavar="D"),
), (Positional("session", "the tmux session name, e.g. gt-nux"),))
PLUGIN_LIST = Command("gt plugin list", "The town's plugins, as Gas Town lists them.", (_json(),), strays=True)
PLUGIN_SHOW = Command("gt plugin show", "One plugin, as Gas Town shows it.", (_json(),), (Positional("name", "the plugin"),))
PLUGIN_RUN = Command("gt plugin run", "Run a plugin now (gtui runs it on a dog and waits).", (
    Flag(("--force",), "force", "run even if its gate is closed or it is disabled", "switch"),
    Flag(("--dry-run",), "dry_run", "say whether it would run", "switch"),
), (Positional("name", "the plugin"),))
PLUGIN_RECORD_RUN = Command("gt plugin record-run", "Record a plugin run receipt (inside that plugin's run: its report) and"
                            " print its id.", (
    Flag(("--plugin",), "plugin", "the plugin (required)", metavar="P"),
    Flag(("--result",), "result", "success, failure, skipped, warning, check-only, ... (required)", metavar="R"),
    Flag(("--title",), "title", "the receipt's title: the run's summary (default Plugin run: P)", metavar="T"),
    Flag(("--description",), "description", "the receipt's description: the run's detail", metavar="D"),
    Flag(("--rig",), "rig", "the rig, kept as rig:R", metavar="R"),
    Flag(("-l", "--label"), "labels", "more labels, repeatable and comma-separated (Gas Town hands each to bd create, whose"
         " -l splits commas)", "list", metavar="K:V"),
), strays=True)
PLUGIN_HISTORY = Command("gt plugin history", "Recent runs of a plugin.", (
    _json(), Flag(("--limit",), "limit", "at most N runs", default="10", metavar="N"),
), (Positional("name", "the plugin"),))
DOG_DISPATCH = Command("gt dog dispatch", "Hand a plugin to a dog (gtui waits for the run).", (
    Flag(("--plugin",), "plugin", "the plugin (required)", metavar="P"),
    Flag(("--rig",), "rig", "for this rig", metavar="R"),
    Flag(("--dog",), "dog", "accepted (gtui picks an idle dog)", metavar="D"),
    Flag(("--create",), "create", "accepted (gtui's dogs always exist)", "switch"),
    Flag(("-n", "--dry-run"), "dry_run", "say what would be dispatched", "switch"),
    _json(),
), strays=True)

COMMANDS = (ESCALATE, STALE, BD_CREATE, BD_LIST, BD_SHOW, BD_CLOSE, BD_VERSION, MAIL_SEND, RIG_LIST, TOWN_ROOT, GT_VERSION,
            SESSION_HEALTH, PLUGIN_LIST, PLUGIN_SHOW, PLUGIN_RUN, PLUGIN_RECORD_RUN, PLUGIN_HISTORY, DOG_DISPATCH)


def markdown(command: Command) -> str:
    """The command's flags as the table docs/gastown.md holds."""
    usage = " ".join([command.name, *(_shown(p) for p in command.positionals)])
    lines = [f"#### `{usage}`", "", command.summary, ""]
    if command.flags:
        lines += ["| flag | meaning |", "|---|---|"]
        for flag in command.flags:
            spelled = ", ".join(f"`{name}`" for name in flag.names)
            value = "" if flag.kind == "switch" else f" {flag.metavar or 'A,B'}"
            default = f" (default `{flag.default}`)" if flag.default not in (None, "") and flag.kind == "value" else ""
            lines.append(f"| {spelled}{value} | {flag.help}{default} |")
        lines.append("")
    if command.strays:
        lines += ["Words no flag takes are ignored, as Gas Town ignores them (inside a run: a warning among its problems).", ""]
    return "\n".join(lines)


def _shown(positional: Positional) -> str:
    name = positional.dest.upper()
    return {"?": f"[{name}]", "*": f"[{name}...]", "+": f"{name}..."}.get(positional.nargs or "", name)


def reference() -> str:
    """Every command's table, in the order of :data:`COMMANDS`."""
    return "\n".join(markdown(command) for command in COMMANDS)


if __name__ == "__main__":
    print(reference(), end="")
