"""The plugin-facing ``gt``: the Gas Town commands its plugins call, answered by gtui.

``gt escalate`` and ``gt stale`` are gtui's own ``escalate`` and ``stale``
(the same flags, from :mod:`gtui.shims.flags`); ``gt rig list``, ``gt mail
send``, ``gt town root``, ``gt version``, ``gt session health``, ``gt plugin
list|show|run|record-run|history`` and ``gt dog dispatch`` answer with Gas
Town's shapes.  Anything else (``gt hook show`` among them: Gas Town's hooks
are beads of its own database) goes to a real ``gt`` found later on PATH, and
inside a run is noted as drift.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from gtcore.core.errors import GtError, Refused
from gtcore.model import FAILED, SEVERITIES, TYPE_CHECKING, Report, Town, parse_duration
from gtui import __version__
from gtui.shims import flags
from gtui.shims.context import actor, engine, guarded, read, run_context, say, say_json
from gtui.terminal import read_stdin

if TYPE_CHECKING:
    from gtcore.model import Plugin

GT_VERSION = "1.2.1"  # the gt whose commands these follow (Gas Town at 649b832b)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    return guarded("gt", words, {"escalate": escalate, "stale": stale, "rig": {"list": rig_list}, "mail": {"send": mail_send},
                                 "town": {"root": town_root}, "version": version, "session": {"health": session_health},
                                 "plugin": {"list": plugin_list, "show": plugin_show, "run": plugin_run,
                                            "record-run": plugin_record_run, "history": plugin_history},
                                 "dog": {"dispatch": dog_dispatch}})


def escalate(argv: list[str]) -> int:
    """Exactly ``gtui escalate``: inside a run, the source is the run's plugin and the escalation is tied to the run.

    As Gas Town's: no words prints the help (exit 0), and a mistake exits 1.
    Its flags are read here as Gas Town reads them (a mistake is refused, and
    inside a run noted), then handed to gtui's command spelled unambiguously.
    """
    if not argv:
        flags.ESCALATE.parser().print_help()
        return 0
    args = read(flags.ESCALATE, argv)
    if args.severity.lower() not in SEVERITIES:
        raise Refused(f"invalid severity '{args.severity}': must be critical, high, medium, or low", ("--severity",))
    return _as_gt(["escalate", *flags.pflag_words(flags.ESCALATE, argv)])


def stale(argv: list[str]) -> int:
    args = read(flags.STALE, argv)
    return _as_gt(["stale", *(["--json"] if args.json else []), *(["--quiet"] if args.quiet else [])])


def _as_gt(argv: list[str]) -> int:
    """Run a gtui command for gt; gtui's "could not" (2) is gt's 1, but ``stale --quiet`` keeps its 2 for an error."""
    from gtui.cli import main as gtui_main
    from gtui.shims.context import answered_elsewhere, environ

    quiet = argv[0] == "stale" and "--quiet" in argv
    town = ["--town", str(Town.locate(environ=environ()).root)] if answered_elsewhere() else []  # a kennel answers it: the
    code = gtui_main([*town, *argv], release=bool(town))  # plugin's town, not the kennel's; its ledger closed when it ends
    return 1 if code == 2 and not quiet else code


def rig_list(argv: list[str]) -> int:
    args = read(flags.RIG_LIST, argv)
    rigs = engine().town.rig_details()
    if not rigs:
        say("No rigs configured.")  # as Gas Town says it, --json or not
    elif args.json:
        say_json(rigs)
    else:
        for rig in rigs:
            say(f"{rig['name']}  {rig['status']}  polecats {rig['polecats']}  crew {rig['crew']}  {rig['repo_path']}")
    return 0


def mail_send(argv: list[str]) -> int:
    args = read(flags.MAIL_SEND, argv)
    to = args.to or args.address
    if not to:
        raise Refused("address required (use positional arg or --to)")
    if not args.subject:
        raise Refused('required flag "subject" not set (-s SUBJECT)', ("--subject",))
    if args.stdin and args.message:
        raise Refused("cannot use --stdin with --message/-m", ("--stdin", "--message"))
    body = read_stdin().rstrip("\n") if args.stdin else args.message or ""
    town = engine()
    sender = args.sender or actor(run_context())
    for address in [to, *args.cc]:
        town.send_mail(address, args.subject, body, sender=sender)
    say(f"✓ Message sent to {to}\n  Subject: {args.subject}")
    return 0


def town_root(argv: list[str]) -> int:
    read(flags.TOWN_ROOT, argv)
    say(str(engine().town.root))
    return 0


def version(argv: list[str]) -> int:
    args = read(flags.GT_VERSION, argv)
    say(f"{GT_VERSION}-gtui" if args.short else f"gt version {GT_VERSION} (gtui {__version__})")
    return 0


def session_health(argv: list[str]) -> int:
    """Gas Town's central liveness check of a tmux agent session; every state exits 0 (the plugin reads ``status``)."""
    args = read(flags.SESSION_HEALTH, argv)
    try:
        limit = parse_duration(args.max_inactivity, days=False)
    except ValueError as exc:
        raise Refused(f"invalid argument for --max-inactivity: {exc}", ("--max-inactivity",)) from None
    health = engine().session_health(args.session, limit.seconds)
    if args.json:
        say_json(health.to_json())
    else:
        say(f"{args.session}: {health.status}")
    return 0


def _summary(plugin: Plugin) -> dict[str, object]:
    """One plugin as Gas Town's ``gt plugin list --json`` shows it."""
    entry: dict[str, object] = {"name": plugin.name, "description": plugin.description,
                                "location": "town" if plugin.rig == "town" else "rig", "gate_type": plugin.gate.type,
                                "path": str(plugin.directory)}
    if plugin.rig != "town":
        entry["rig_name"] = plugin.rig
    return entry


def plugin_list(argv: list[str]) -> int:
    args = read(flags.PLUGIN_LIST, argv)
    plugins = sorted(engine().plugins().plugins, key=lambda plugin: plugin.name)
    if args.json:
        say_json([_summary(plugin) for plugin in plugins])
    else:
        for plugin in plugins:
            say(f"  {plugin.name} [{plugin.gate.type}]" + (f" ({plugin.rig})" if plugin.rig != "town" else ""))
    return 0


def plugin_show(argv: list[str]) -> int:
    args = read(flags.PLUGIN_SHOW, argv)
    plugin = engine().plugin(args.name)
    shown = {**_summary(plugin), "version": plugin.version if isinstance(plugin.version, int) else 0,
             "gate": plugin.gate.to_json(), "tracking": plugin.tracking.to_json(), "execution": plugin.execution.to_json(),
             "instructions": plugin.instructions, "has_run_script": plugin.has_run_script}
    del shown["gate_type"]
    if args.json:
        say_json(shown)
    else:
        say(f"{plugin.name}: {plugin.description}\n  gate: {plugin.gate.describe()}\n  path: {plugin.directory}")
    return 0


def plugin_run(argv: list[str]) -> int:
    """Gas Town prints the instructions and records a run; gtui queues the run for the kennel and waits for its result."""
    from gtui.cli.dispatching import ended_badly  # what only these two verbs need: every other call of a plugin goes without

    args = read(flags.PLUGIN_RUN, argv)
    town = engine()
    plugin = town.plugin(args.name)
    if args.dry_run:
        say(f"would run {plugin.name} ({plugin.gate.describe()})")
        return 0
    queued = town.run_plugin(plugin.name, force=args.force)
    ended = town.wait_runs([queued.id]).get(queued.id, queued)
    town.close()
    if ended.status != "closed":  # it ended, but the ledger refused its end
        raise GtError(town.unrecorded(ended.id) or f"{ended.ref} ended but is not recorded yet")
    say(f"● Recorded run: {ended.ref} ({ended.result})")
    return ended_badly(ended)


def plugin_record_run(argv: list[str]) -> int:
    """Gas Town's receipt of a plugin run; prints its id.

    Inside a run of that very plugin it is the run's own report (result,
    title as summary, description as detail, rig and labels kept); anywhere
    else a receipt of its own, closed at once, that the plugin's history and
    gate count as a run, as Gas Town's do.
    """
    args = read(flags.PLUGIN_RECORD_RUN, argv)
    if not args.plugin:
        raise Refused("--plugin is required", ("--plugin",))
    if not args.result:
        raise Refused("--result is required", ("--result",))
    labels = tuple(dict.fromkeys([*([f"rig:{args.rig}"] if args.rig else []), *args.labels]))
    report = Report(args.result, (args.title or f"Plugin run: {args.plugin}").strip(), (args.description or "").strip(), labels)
    context = run_context()
    town = engine()
    if context is not None and context.plugin == args.plugin:
        bead = town.report(context.run_ref, context.token, report)
    else:
        bead = town.record_receipt(args.plugin, report, rig=args.rig or "town", actor=actor(context))
    say(bead.ref)
    return 0


def plugin_history(argv: list[str]) -> int:
    """Gas Town's history of a plugin's runs: ✗ a failure (gtui's timeout and abandoned too), ○ skipped (or still in
    flight), ✓ any other result, under its header."""
    args = read(flags.PLUGIN_HISTORY, argv)
    if not str(args.limit).isdigit():
        raise Refused(f"--limit expects a whole number, not {args.limit!r}", ("--limit",))
    from gtui.shims.bd import bd_json

    runs = [bd_json(run) for run in engine().find_beads(labels=["type:plugin-run", f"plugin:{args.name}"], limit=int(args.limit))]
    if args.json:
        say_json([{key: run[key] for key in ("id", "title", "created_at", "labels")} for run in runs])
    elif not runs:
        say(f"○ No execution history for plugin: {args.name}")
    else:
        say(f"● Execution history for {args.name} ({len(runs)} runs)\n")
        for run in runs:
            say(f"  {_mark(run['labels'])} {run['created_at'][:16].replace('T', ' ')}  {run['id']}")
    return 0


def _mark(labels: list[str]) -> str:
    result = next((label.split(":", 1)[1] for label in labels if label.startswith("result:")), "")
    return "✗" if result in FAILED | {"abandoned"} else "○" if result in ("skipped", "queued", "running") else "✓"


def dog_dispatch(argv: list[str]) -> int:
    """As Gas Town's: hand the plugin over and return at once (gtui queues its run for the kennel), in its shape."""
    from gtui.cli.dispatching import dispatch_words, dispatched, ended_badly

    args = read(flags.DOG_DISPATCH, argv)
    if not args.plugin:
        raise Refused('required flag "plugin" not set (--plugin NAME)', ("--plugin",))
    town = engine()
    plugin = town.plugin(args.plugin)
    code = 0
    if args.dry_run:
        shown = {"plugin": plugin.name, "plugin_path": str(plugin.directory), "work": f"plugin:{plugin.name}", "dry_run": True,
                 "session_started": False, "work_confirmed": False}
        if plugin.rig != "town":
            shown["plugin_rig"] = plugin.rig
    else:
        shown, taken = dispatched(town, plugin.name, str(plugin.directory), plugin.rig, town.run_plugin(plugin.name, rig=args.rig))
        code = ended_badly(taken)
    if args.json:
        sys.stdout.write(json.dumps(shown) + "\n")
    elif args.dry_run:
        say(f"Dry run - would dispatch:\n  Plugin: {plugin.name}\n  Work: plugin:{plugin.name}")
    else:
        say(dispatch_words(shown))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
