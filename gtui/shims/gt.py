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
from collections.abc import Callable, Sequence

from gtcore.errors import GtError
from gtcore.model import TYPE_CHECKING, Report, parse_duration
from gtui import __version__
from gtui.dispatching import dispatch_words, dispatched, ended_badly
from gtui.shims import flags
from gtui.shims.context import actor, engine, guarded, hand_over, run_context, say, say_json

if TYPE_CHECKING:
    from gtcore.model import Plugin

GT_VERSION = "1.2.1"  # the gt whose commands these follow (Gas Town at 649b832b)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    return guarded("gt", words, {"escalate": escalate, "stale": stale, "rig": _group("rig", {"list": rig_list}),
                                 "mail": _group("mail", {"send": mail_send}), "town": _group("town", {"root": town_root}),
                                 "version": version, "session": _group("session", {"health": session_health}),
                                 "plugin": _group("plugin", {"list": plugin_list, "show": plugin_show, "run": plugin_run,
                                                             "record-run": plugin_record_run, "history": plugin_history}),
                                 "dog": _group("dog", {"dispatch": dog_dispatch})})


def _group(name: str, verbs: dict[str, Callable[[list[str]], int]]) -> Callable[[list[str]], int]:
    """``gt NAME VERB ...``: a verb gtui does not provide goes on to a real gt."""

    def dispatch(argv: list[str]) -> int:
        if not argv or argv[0] not in verbs:
            return hand_over("gt", [name, *argv])
        return verbs[argv[0]](argv[1:])

    return dispatch


def escalate(argv: list[str]) -> int:
    """Exactly ``gtui escalate``: inside a run, the source is the run's plugin and the escalation is tied to the run.

    As Gas Town's: no words prints the help (exit 0), and a mistake exits 1.
    """
    if not argv:
        flags.ESCALATE.parser().print_help()
        return 0
    return _as_gt(["escalate", *argv])


def stale(argv: list[str]) -> int:
    return _as_gt(["stale", *argv])


def _as_gt(argv: list[str]) -> int:
    """Run a gtui command for gt; gtui's "could not" (2) is gt's 1, but ``stale --quiet`` keeps its 2 for an error."""
    from gtui.cli import main as gtui_main

    code = gtui_main(argv)
    quiet = argv[0] == "stale" and ("-q" in argv or "--quiet" in argv)
    return 1 if code == 2 and not quiet else code


def rig_list(argv: list[str]) -> int:
    args = flags.RIG_LIST.parser().parse_args(argv)
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
    args = flags.MAIL_SEND.parser().parse_args(argv)
    to = args.to or args.address
    if not to:
        raise GtError("address required (use positional arg or --to)")
    if not args.subject:
        raise GtError('required flag "subject" not set (-s SUBJECT)')
    if args.stdin and args.message:
        raise GtError("cannot use --stdin with --message/-m")
    body = sys.stdin.read().rstrip("\n") if args.stdin else args.message or ""
    town = engine()
    sender = args.sender or actor(run_context())
    for address in [to, *args.cc]:
        town.send_mail(address, args.subject, body, sender=sender)
    say(f"✓ Message sent to {to}\n  Subject: {args.subject}")
    return 0


def town_root(argv: list[str]) -> int:
    say(str(engine().town.root))
    return 0


def version(argv: list[str]) -> int:
    args = flags.GT_VERSION.parser().parse_args(argv)
    say(f"{GT_VERSION}-gtui" if args.short else f"gt version {GT_VERSION} (gtui {__version__})")
    return 0


def session_health(argv: list[str]) -> int:
    """Gas Town's central liveness check of a tmux agent session; every state exits 0 (the plugin reads ``status``)."""
    args = flags.SESSION_HEALTH.parser().parse_args(argv)
    try:
        limit = parse_duration(args.max_inactivity, days=False)
    except ValueError as exc:
        raise GtError(f"invalid argument for --max-inactivity: {exc}") from None
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
    args = flags.PLUGIN_LIST.parser().parse_args(argv)
    plugins = sorted(engine().plugins().plugins, key=lambda plugin: plugin.name)
    if args.json:
        say_json([_summary(plugin) for plugin in plugins])
    else:
        for plugin in plugins:
            say(f"  {plugin.name} [{plugin.gate.type}]" + (f" ({plugin.rig})" if plugin.rig != "town" else ""))
    return 0


def plugin_show(argv: list[str]) -> int:
    args = flags.PLUGIN_SHOW.parser().parse_args(argv)
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
    args = flags.PLUGIN_RUN.parser().parse_args(argv)
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
    args = flags.PLUGIN_RECORD_RUN.parser().parse_args(argv)
    if not args.plugin:
        raise GtError("--plugin is required")
    if not args.result:
        raise GtError("--result is required")
    labels = tuple(dict.fromkeys([*([f"rig:{args.rig}"] if args.rig else []), *args.labels]))
    report = Report(args.result, (args.title or f"Plugin run: {args.plugin}").strip(), (args.description or "").strip(), labels)
    context = run_context()
    town = engine()
    if context is not None and context.plugin == args.plugin:
        bead = town.report(context.run_id, context.token, report)
    else:
        bead = town.record_receipt(args.plugin, report, rig=args.rig or "town", actor=actor(context))
    say(bead.ref)
    return 0


def plugin_history(argv: list[str]) -> int:
    args = flags.PLUGIN_HISTORY.parser().parse_args(argv)
    if not str(args.limit).isdigit():
        raise GtError(f"--limit expects a whole number, not {args.limit!r}")
    from gtui.shims.bd import bd_json

    runs = [bd_json(run) for run in engine().find_beads(labels=["type:plugin-run", f"plugin:{args.name}"], limit=int(args.limit))]
    if args.json:
        say_json([{key: run[key] for key in ("id", "title", "created_at", "labels")} for run in runs])
    else:
        for run in runs:
            mark = "✓" if "result:success" in run["labels"] else "✗" if "result:failure" in run["labels"] else "○"
            say(f"{mark} {run['created_at'][:16].replace('T', ' ')}  {run['id']}")
    return 0


def dog_dispatch(argv: list[str]) -> int:
    """As Gas Town's: hand the plugin over and return at once (gtui queues its run for the kennel), in its shape."""
    args = flags.DOG_DISPATCH.parser().parse_args(argv)
    if not args.plugin:
        raise GtError('required flag "plugin" not set (--plugin NAME)')
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
