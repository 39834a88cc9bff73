"""The ``gtui`` command line: one entry point, every listing with ``--json``.

Errors reach the user as one line on stderr (and as ``{"error": ...}`` on
stdout with ``--json``) with exit status 2; a traceback never does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from rich.console import Console

from gtcore.discovery import PluginSet, discover
from gtcore.errors import GtError, NotFound
from gtcore.ledger import Ledger
from gtcore.report import plugin_json, run_json
from gtcore.town import Town
from gtui import render

EXIT_ERROR = 2


class UsageError(GtError):
    """The command line itself is wrong."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as one line instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common(parser: argparse.ArgumentParser) -> None:
    """Options every command takes; SUPPRESS lets them stand before or after the verb."""
    parser.add_argument("--town", default=argparse.SUPPRESS, help="town root (default: $GT_TOWN, else ~/gt)")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gtui", description="Gas Town plugin engine and control room.")
    _common(parser)
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
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


class Context:
    """What a command needs: the town, its ledger (opened on demand) and the output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json = bool(getattr(args, "json", False))
        self.town = Town.locate(getattr(args, "town", None))
        self.console = Console(highlight=False, soft_wrap=False)
        self._ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.town.ledger_path)
        return self._ledger

    def emit(self, payload: dict[str, Any], human: Callable[[], None]) -> None:
        """Print ``payload`` as JSON or call ``human`` to draw it for people."""
        if self.json:
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        else:
            human()

    def plugin(self, plugins: PluginSet, name: str) -> Any:
        found = plugins.get(name)
        if found is None:
            raise NotFound(f"no plugin named {name!r} in town {self.town.root}")
        return found


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
    plugins = discover(ctx.town)
    plugin = ctx.plugin(plugins, ctx.args.name)
    stats = ctx.ledger.plugin_summary().get(plugin.name)
    payload = {**plugin_json(plugin, stats), "instructions": plugin.instructions, "warnings": list(plugin.warnings)}
    ctx.emit(payload, lambda: render.plugin_detail(ctx.console, plugin, stats, time.time()))
    return 0


def cmd_plugin_history(ctx: Context) -> int:
    name = ctx.args.name
    runs = ctx.ledger.runs(name, limit=ctx.args.limit)
    if not runs and discover(ctx.town).get(name) is None:
        raise NotFound(f"no plugin named {name!r} in town {ctx.town.root}, and no runs of it on the ledger")
    payload = {"plugin": name, "runs": [run_json(run) for run in runs]}
    ctx.emit(payload, lambda: render.run_history(ctx.console, name, runs, time.time()))
    return 0


COMMANDS: dict[tuple[str | None, str | None], Callable[[Context], int]] = {
    ("plugin", "list"): cmd_plugin_list,
    ("plugin", "show"): cmd_plugin_show,
    ("plugin", "history"): cmd_plugin_history,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gtui`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
        command = COMMANDS.get((args.command, getattr(args, "verb", None)))
        if command is None:
            args = build_parser().parse_args(["plugin", "list", *argv])
            command = cmd_plugin_list
        return command(Context(args))
    except GtError as exc:
        return _fail(str(exc), wants_json)
    except KeyboardInterrupt:
        return _fail("interrupted", wants_json)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: never a traceback
        return _fail(f"internal error: {type(exc).__name__}: {exc} ({_save_crash()})", wants_json)


def _fail(message: str, wants_json: bool) -> int:
    if wants_json:
        sys.stdout.write(json.dumps({"error": message}) + "\n")
    sys.stderr.write(f"gtui: error: {message}\n")
    return EXIT_ERROR


def _save_crash() -> str:
    """Keep the traceback for developers in a file instead of on the user's screen."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", prefix="gtui-crash-", suffix=".txt", delete=False) as handle:
        traceback.print_exc(file=handle)
    return f"details in {handle.name}"
