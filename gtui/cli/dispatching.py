"""The commands that hand runs to the kennel, and the kennel's own: ``--once``, ``plugin run``, ``dog dispatch``, ``kennel``.

None of them runs a plugin.  They queue its run on the ledger, wake (or
start) this host's kennel and return; ``plugin run`` and ``--once --wait``
then follow the run's log and wait for its result on the ledger, and
ctrl+c in ``plugin run`` stops that run.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

from gtcore.core.errors import GtError, KennelBusy, LedgerError
from gtcore.model import FAILED, TYPE_CHECKING, Problem, Result

if TYPE_CHECKING:
    from typing import Any

    from gtcore.engine import Engine
    from gtcore.model import Bead
    from gtui.cli import Context

STOP_WAIT_SECONDS = 15.0  # past the kill grace: how long a stopped run may take to be recorded before the command gives up on it
TAKE_WAIT_SECONDS = 0.5  # dog dispatch waits this long for a kennel to take the run, to name its dog
KENNEL_ARGV = (sys.executable, "-m", "gtui")  # how a command starts the kennel: this gtui, whatever started the command

ENDED_BADLY = FAILED | {Result.ABANDONED}  # results a command that waited for a run exits 1 on
HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # what plugin run holds back while it queues (see _follow_to_the_end)


def cmd_once(ctx: Context) -> int:
    """One patrol: reconcile, decide, queue what is open, and report; with ``--wait``, the queued runs' results too.

    Also reports, once each, every run that ended since the previous
    ``--once`` on this town (``finished``): how the Deacon learns results
    without waiting for them.
    """
    from gtcore.model import HealthWord, finished_json, run_problems  # the JSON shapes: only the commands that print them
    from gtui.cli import UsageError, warn

    if ctx.reads_only and ctx.args.event:
        raise UsageError("--event writes an event to the ledger, and --read-only never writes")
    engine = ctx.engine
    for name in ctx.args.event:
        engine.emit_event(name, source="gtui --once")
    follow = _printer(ctx) if ctx.args.wait and not ctx.json else None
    report = engine.patrol_once(wait=ctx.args.wait, follow=follow)
    finished, more, refused = _take_finished(ctx, engine)
    engine.close()
    if engine.settings.keymap:
        from gtui.tui.keys import check_keymap

        report.problems += check_keymap(engine.settings.keymap, engine.settings.path)[1]  # the control room's keys, checked here too
    report.problems += [problem for run in finished for problem in run_problems(run)]  # what they asked of Gas Town in vain
    report.problems += refused
    report.problems += [Problem(str(ctx.town.root), "kennel", note, "warning") for note in ctx.notes]
    for item in report.plugins:  # with --wait: a run that ended but whose end the ledger refused is said, not reported as run
        if ctx.args.wait and item.run is not None and item.run.status != "closed" and (words := engine.unrecorded(item.run.id)):
            report.unrecorded.append(words)
            report.problems.append(Problem(str(ctx.town.root), None, words))
    health = report.health()  # its problems are all in: judged once, for the JSON and for the exit status
    payload = {**report.to_json(health), "finished": [finished_json(run) for run in finished], "finished_more": more}
    ctx.emit(payload, lambda: ctx.render.patrol_report(ctx.console, report, finished))
    for problem in report.problems:
        warn(str(problem), problem.level)
    if report.unrecorded or refused:
        return 2  # a result the ledger refused is kept, not recorded: said, and the patrol did not do all its work
    failing = health.word is HealthWord.FAILING
    return 1 if failing or report.failed or report.undeliverable or any(map(finished_badly, finished)) else 0


def finished_badly(run: Bead) -> bool:
    """A run in ``finished`` that makes ``--once`` exit 1: it failed, or gtui left a call of it unanswered (an error among
    its problems: the plugin could not do what it meant, even if it silenced the call).  A receipt (``gt plugin
    record-run`` outside a run of its plugin) is a record someone wrote, not a run gtui ran: listed, never the exit."""
    from gtcore.model import run_problems

    if run.data.get("receipt"):
        return False
    return run.result in ENDED_BADLY or any(problem.level == "error" for problem in run_problems(run))


def _take_finished(ctx: Context, engine: Engine) -> tuple[list[Bead], bool, list[Problem]]:
    """The runs that ended since the last ``--once``; when the ledger refuses to move its mark (a full disk), none, and
    why: they are the next ``--once``'s to report, and the patrol's report is still printed."""
    if ctx.reads_only or ctx.gone():  # nobody would read them: they stay for the next --once
        return [], False, []
    try:
        return (*engine.take_finished(), [])
    except LedgerError as exc:
        words = f"{exc}; the runs that ended since the last --once are the next one's to report"
        return [], False, [Problem(str(ctx.town.root), None, words)]


def _printer(ctx: Context) -> Callable[[Bead, str], None]:
    """Show a run's output lines as they come, for a person watching."""

    def show(run: Bead, line: str) -> None:
        ctx.say((f"{run.plugin} | ", "dim"), line)

    return show


def cmd_plugin_run(ctx: Context) -> int:
    """Queue a run now, whatever its gate; follow its log and exit with its result (``--detach``: return with its id)."""
    engine = ctx.engine
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD)  # a signal while it is queued acts on the run once it has an id
    try:
        run = engine.run_plugin(ctx.args.name, force=ctx.args.force)
        _kennel_warning(engine)
        if ctx.args.detach:
            ctx.emit({"id": run.ref, "plugin": run.plugin, "status": run.status},
                     lambda: ctx.say(f"{run.ref} queued: {run.plugin} (gtui plugin log {run.plugin} {run.ref} shows its output)"))
            return 0
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
        raise
    return _follow_to_the_end(ctx, engine, run)


def _follow_to_the_end(ctx: Context, engine: Engine, run: Bead) -> int:
    """Wait for the run's result, showing its output; ctrl+c stops the run (recorded ``abandoned``), SIGTERM only the following.

    The signals come blocked (see :func:`cmd_plugin_run`): one that came
    while the run was being queued is delivered here, where it acts on the run.
    """
    follow = None if ctx.json else _printer(ctx)
    before = {sig: signal.signal(sig, _let_go) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
        ended = engine.wait_runs([run.id], follow=follow).get(run.id, run)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping the run must not be interrupted in turn
        engine.stop_run(run.id, "interrupted (ctrl+c) in gtui plugin run")
        ended = engine.wait_runs([run.id], timeout=engine.settings.kill_grace.seconds + STOP_WAIT_SECONDS).get(run.id, run)
        raise GtError(f"interrupted: {run.ref} was stopped" + (f" and recorded {ended.result}" if ended.status == "closed"
                                                                  else " (its kennel records it)")) from None
    except _LetGo as exc:
        raise GtError(f"{exc}: stopped following {run.ref}, which goes on in the kennel (gtui plugin log {run.plugin} {run.ref})") from None
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    engine.close()
    if ended.status != "closed":  # it ended, but the ledger refused its end: said, never printed as if recorded
        raise GtError(engine.unrecorded(ended.id) or f"{ended.ref} ended but is not recorded yet")
    from gtcore.model import run_json

    ctx.emit(run_json(ended), lambda: ctx.render.run_result(ctx.console, ended))
    return ended_badly(ended)


class _LetGo(Exception):
    """SIGTERM or SIGHUP while following a run: the command goes, the run stays with its kennel."""


def _let_go(signum: int, frame: object) -> None:
    raise _LetGo(f"stopped by {signal.Signals(signum).name}")


def cmd_dog_dispatch(ctx: Context) -> int:
    """Gas Town's ``gt dog dispatch``: queue the run and return at once, with its id (and its dog, once a kennel took it)."""
    engine = ctx.engine
    run = engine.run_plugin(ctx.args.plugin, rig=ctx.args.rig)
    _kennel_warning(engine)
    plugin = engine.plugin(ctx.args.plugin)
    shown, taken = dispatched(engine, plugin.name, str(plugin.directory), plugin.rig, run)
    ctx.emit(shown, lambda: ctx.say(dispatch_words(shown)))
    return ended_badly(taken)


def ended_badly(run: Bead) -> int:
    """The exit status a command owes for a run as the ledger has it: 1 when it ended ``failure``, ``timeout`` or
    ``abandoned`` (whatever the command saw of it before), else 0."""
    return 1 if run.status == "closed" and run.result in ENDED_BADLY else 0


def dispatched(engine: Engine, name: str, path: str, rig: str, run: Bead) -> tuple[dict[str, Any], Bead]:
    """What a dispatch answers, in Gas Town's shape (``plugin``, ``plugin_path``, ``dog``, ``work``, ...) plus the run;
    and the run as it was then."""
    taken = engine.wait_taken(run.id, TAKE_WAIT_SECONDS)
    shown: dict[str, Any] = {"plugin": name, "plugin_path": path, "dog": taken.data.get("dog", ""), "work": f"plugin:{name}",
                             "session_started": taken.status != "queued", "work_confirmed": True, "run": run.ref,
                             "status": taken.status}
    if rig != "town":
        shown["plugin_rig"] = rig
    return shown, taken


def dispatch_words(shown: dict[str, Any]) -> str:
    """Gas Town's lines for a dispatch, with the run gtui queued."""
    where = f"{shown['plugin_rig']}/plugins/{shown['plugin']}" if "plugin_rig" in shown else f"plugins/{shown['plugin']} (town-level)"
    dog = shown["dog"] or "(the next idle dog)"
    return (f"✓ Found plugin: {shown['plugin']}\n  Location: {where}\n🐕 Dispatching to dog: {dog}\n"
            f"✓ Plugin dispatched (non-blocking)\n  Dog: {dog}\n  Work: {shown['work']}\n  Run: {shown['run']} ({shown['status']})")


def _kennel_warning(engine: Engine) -> None:
    from gtui.cli import warn

    if engine.kennel_problem:
        warn(f"{engine.kennel_problem}; the run waits in the queue")


# -- the kennel ----------------------------------------------------------------------------------


def cmd_kennel_run(ctx: Context) -> int:
    """``gtui kennel [--patrol]``: the kennel in the foreground until it is stopped (or, autostarted, idle for kennel_idle)."""
    from gtcore.engine import Engine

    # A signal mask is inherited across exec: a kennel started while its command held signals back (plugin run does)
    # would hold them for good, and so would every run it starts (a plugin's own kill -TERM $$ would do nothing).
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    ready = Engine.detach() if ctx.args.autostarted else None
    engine = ctx.kennel_engine()
    from gtui.thin import answering

    answerer = answering(str(engine.town.root))
    house = engine.kennel(patrol=ctx.args.patrol, autostarted=ctx.args.autostarted, answerer=answerer)
    try:
        house.open()
    except KennelBusy as exc:
        if ready is None:
            raise
        ready(False)
        _kennel_says(f"kennel pid {os.getpid()} not started: {exc}")
        return 0  # a racing command started one: that one serves
    try:
        house.start()
        if ready is not None:
            ready(True)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: house.ask_stop(f"the kennel was stopped by {signal.Signals(signum).name}"))
        _kennel_says(f"kennel pid {os.getpid()} serving {engine.town.root} on {house.host} with {engine.settings.dogs} dogs"
                     + (", patrolling every " + str(engine.settings.patrol_interval) if ctx.args.patrol else ""))
        from gtui.tui.gc_tuning import TIDY_SECONDS, GcTuning

        with GcTuning(tidy=TIDY_SECONDS) as tuning:  # tidied as the control room is: its answers leave cyclic garbage too
            tuning.freeze()  # what the kennel made to live (its engine, the command line it answers with) is never scanned again
            return house.serve()
    finally:
        house.close()
        answerer.close()
        _kennel_says(f"kennel pid {os.getpid()} stopped" + (f": {house.stop_reason}" if house.stop_reason else ""))


def _kennel_says(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} gtui kennel: {message}\n")
    sys.stderr.flush()


def cmd_kennel_status(ctx: Context) -> int:
    kennels = ctx.engine.kennels()
    ctx.emit({"town": str(ctx.town.root), "kennels": kennels}, lambda: ctx.render.kennel_list(ctx.console, kennels))
    return 0


def cmd_kennel_stop(ctx: Context) -> int:
    """Stop this host's kennel (its runs stopped and recorded ``abandoned``), or let it drain (take nothing new, exit after)."""
    engine, drain = ctx.engine, ctx.args.drain
    answer = engine.stop_kennel(drain=drain, reason="the kennel was stopped (gtui kennel stop)")
    if answer is None:
        ctx.emit({"stopped": False, "reason": "no kennel is running"},
                 lambda: ctx.say(f"no kennel is running for {ctx.town.root} on this host"))
        return 0
    runs = answer.get("runs", 0)
    if drain:
        words = f"kennel pid {answer['pid']} is draining: it takes nothing new and exits when its {runs} run(s) end"
    else:
        deadline = time.monotonic() + engine.settings.kill_grace.seconds + STOP_WAIT_SECONDS
        while engine.kennel_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if engine.kennel_alive():
            raise GtError(f"kennel pid {answer['pid']} was asked to stop but still runs after {STOP_WAIT_SECONDS:g}s")
        words = f"kennel pid {answer['pid']} stopped; its {runs} run(s) were stopped and recorded abandoned"
    ctx.emit({"stopped": not drain, "draining": drain, "pid": answer["pid"], "host": answer["host"], "runs": runs},
             lambda: ctx.say(words))
    return 0
