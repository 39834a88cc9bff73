"""The flags of every plugin-facing command, in one table: the parsers are built from it, and so is docs/gastown.md.

Each :class:`Command` lists its flags as Gas Town (``gt``) and beads
(``bd``) spell them, so a plugin written for Gas Town parses unchanged.
``python -m gtui.shims.flags`` prints the tables the docs hold; a test keeps
the two in step.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

Kind = Literal["value", "switch", "list", "repeat"]


@dataclass(frozen=True)
class Flag:
    """One option: its spellings, where it lands, and what it means.

    ``list`` options repeat and split commas (``-l a,b -l c`` is three
    labels), as bd's string slices do; ``repeat`` options repeat and keep
    each value whole (``-l a,b`` is one label), as gt's string arrays do.
    """

    names: tuple[str, ...]
    dest: str
    help: str
    kind: Kind = "value"
    default: Any = None
    metavar: str | None = None


@dataclass(frozen=True)
class Positional:
    dest: str
    help: str
    nargs: str | None = None  # None: exactly one; "?", "*", "+" as argparse


@dataclass(frozen=True)
class Command:
    """A plugin-facing command: ``gt escalate``, ``bd create``, ..."""

    name: str
    summary: str
    flags: tuple[Flag, ...] = ()
    positionals: tuple[Positional, ...] = field(default_factory=tuple)

    def parser(self, parser_class: type[argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
        parser = (parser_class or CommandParser)(prog=self.name, description=self.summary)
        add_arguments(parser, self)
        return parser


class CommandParser(argparse.ArgumentParser):
    """Usage mistakes are one line and exit 1, as gt and bd do."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: error: {message}\n")


def add_arguments(parser: argparse.ArgumentParser, command: Command) -> None:
    """Give ``parser`` the command's positionals and flags, exactly as the table says."""
    for positional in command.positionals:
        parser.add_argument(positional.dest, help=positional.help, **({"nargs": positional.nargs} if positional.nargs else {}))
    for flag in command.flags:
        if flag.kind == "switch":
            parser.add_argument(*flag.names, dest=flag.dest, action="store_true", help=flag.help)
        elif flag.kind == "list":
            parser.add_argument(*flag.names, dest=flag.dest, action=_CommaList, default=[], metavar=flag.metavar or "A,B", help=flag.help)
        elif flag.kind == "repeat":
            parser.add_argument(*flag.names, dest=flag.dest, action="append", default=[], metavar=flag.metavar, help=flag.help)
        else:
            parser.add_argument(*flag.names, dest=flag.dest, default=flag.default, metavar=flag.metavar, help=flag.help)


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
         " suppressed (Gas Town's escalation-fp: label)", metavar="KEY"),
    Flag(("--stdin",), "stdin", "read the reason from standard input", "switch"),
    Flag(("-n", "--dry-run"), "dry_run", "say what would be raised and routed; write and send nothing", "switch"),
    _json(),
), (Positional("words", "the subject", "*"),))

STALE = Command("gt stale", "Is the gt binary behind a build branch of its repository? (Gas Town's exit convention)", (
    Flag(("--json",), "json", "print one flat object, exit 0 (also when skipped or on error, saying so)", "switch"),
    Flag(("-q", "--quiet"), "quiet", "print nothing: exit 0 stale, 1 fresh, 2 skipped or error", "switch"),
))

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
), (Positional("title", "the title", "?"),))

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
))

BD_SHOW = Command("bd show", "Show beads as a JSON array.", (_json(),), (Positional("ids", "bead or run ids", "+"),))

BD_CLOSE = Command("bd close", "Close beads (notes; runs are closed by gtui when they end).", (
    Flag(("-r", "--reason", "--resolution", "-m", "--message"), "reason", "why", metavar="R"),
    Flag(("-f", "--force"), "force", "accepted", "switch"),
), (Positional("ids", "bead ids", "+"),))

BD_VERSION = Command("bd version", "Print the version (bd version X.Y.Z ...).")

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

RIG_LIST = Command("gt rig list", "The town's rigs.", (_json(),))
TOWN_ROOT = Command("gt town root", "Print the town root.")
GT_VERSION = Command("gt version", "Print the version (gt version X.Y.Z ...).", (
    Flag(("--short",), "short", "just the version", "switch"),
    Flag(("-v", "--verbose"), "verbose", "accepted", "switch"),
))
SESSION_HEALTH = Command("gt session health", "Is a tmux agent session alive (Gas Town's central liveness check, read from tmux"
                         " as it reads it)?", (
    _json(),
    Flag(("--max-inactivity",), "max_inactivity", "a Go duration: idle longer than this is agent-hung (0 disables)", default="0",
         metavar="D"),
), (Positional("session", "the tmux session name, e.g. gt-nux"),))
PLUGIN_LIST = Command("gt plugin list", "The town's plugins, as Gas Town lists them.", (_json(),))
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
    Flag(("-l", "--label"), "labels", "one more label, repeatable (a comma stays in the label)", "repeat", metavar="K:V"),
))
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
))

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
    return "\n".join(lines)


def _shown(positional: Positional) -> str:
    name = positional.dest.upper()
    return {"?": f"[{name}]", "*": f"[{name}...]", "+": f"{name}..."}.get(positional.nargs or "", name)


def reference() -> str:
    """Every command's table, in the order of :data:`COMMANDS`."""
    return "\n".join(markdown(command) for command in COMMANDS)


if __name__ == "__main__":
    print(reference(), end="")
