"""The commands that list and change what the ledger holds: plugins, runs, dogs, escalations, mail, events, stale
binaries, digests and the ledger's copy (those that queue runs and the kennel's are :mod:`gtui.cli.dispatching`)."""

from __future__ import annotations

import json
import sys
import time

from gtcore.core.errors import NotFound
from gtcore.model import SEVERITIES, Report
from gtui import terminal
from gtui.cli import Context, warn
from gtui.cli.parser import EXIT_ERROR, UsageError


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
    related = args.related or (run.run_ref if run else None)
    if args.dry_run:
        return _escalate_dry_run(ctx, subject, args.severity, reason, source, given_source)
    escalation, created = ctx.engine.raise_escalation(subject, args.severity, body=reason, source=source, related=related,
                                                      now=time.time(), fingerprint=args.fingerprint)
    from gtui.cli.escalate import escalation_outcome, suppressed_outcome

    suppressed = fingerprint_label(args.fingerprint) is not None and not created
    outcome = (suppressed_outcome(escalation) if suppressed
               else escalation_outcome(escalation, created, ctx.engine, given_source=given_source))
    ctx.emit(outcome.payload, lambda: ctx.say_lines(outcome.lines))
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
    ctx.emit(payload, lambda: ctx.say_lines(lines))
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
    bead = ctx.engine.report(run.run_ref, run.token, Report(ctx.args.result, ctx.args.summary, ctx.args.detail))
    ctx.emit({"run": bead.ref, "reported_result": ctx.args.result, "summary": ctx.args.summary},
             lambda: ctx.say(f"{bead.ref}: reported {ctx.args.result}: {ctx.args.summary}"))
    return 0
