"""Faults from the real world, against the real ``gtui`` command: a damaged, full, read-only or locked
ledger; runs that leave processes behind, time out, lose their owner or cannot write their log;
delivery channels that trickle or hang; settings with mistakes; text that tries to drive the terminal.

Every fault is real (tmpfs and read-only bind mounts, ``dd`` until ENOSPC, SIGKILL, sockets on
127.0.0.1); every mount is unmounted and every process killed whatever the outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from enginekit import (
    Result,
    add_plugin,
    gone,
    gtui,
    gtui_argv,
    gtui_env,
    kill_group,
    make_town,
    one_error_line,
    proc_state,
    read_pid,
    runs,
    taken,
    wait_for,
)
from faultkit import HangingWebhook, TricklingSmtp, fill, kill_token_holders, read_only, tmpfs, token_holders
from kennelkit import kennel_pid, stop_kennels_under

from gtcore.escalation.escalations import Escalations
from gtcore.storage import open_ledger
from gtcore.storage.testing import lock_held_by_child
from gtcore.town.layout import Town

SETTINGS = 'dogs = 2\nkill_grace = "1s"\ndelivery_timeout = "2s"\n'
MANUAL = 'type = "manual"'
DEADLINE = 2.0  # delivery_timeout above


def state_dir(town: Path) -> Path:
    return town / ".gtui"


def ledger_path(town: Path) -> Path:
    return town / ".gtui" / "ledger.db"


def timed(town: Path, *args: str) -> tuple[Result, float]:
    """``gtui`` to completion, and how long it took (wall clock)."""
    started = time.monotonic()
    done = gtui(town, *args)
    return done, time.monotonic() - started


def json_error(result: Result, *fragments: str) -> str:
    """With ``--json`` a refusal is also ``{"error": ...}`` on stdout, the whole of it."""
    payload = result.json()
    assert set(payload) == {"error"}, payload
    for fragment in fragments:
        assert fragment in payload["error"], payload["error"]
    return payload["error"]


# -- the ledger ---------------------------------------------------------------------------------------------------


def ledger_with_runs(db: Path, count: int = 300) -> None:
    """A real ledger of many pages: closed runs of a few plugins, written by the engine and cleanly closed (no -wal)."""
    book = open_ledger(db)
    for index in range(count):
        run = book.claim_run(f"p{index % 5}", "town", data={"note": "x" * 200})
        book.close_run(run.id, "success", data={"exit_code": 0})
    book.close()
    assert not db.with_name(db.name + "-wal").exists()


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated"])
def test_a_damaged_ledger_is_refused_in_one_line_and_left_untouched(tmp_path: Path, damage: str) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    directory = add_plugin(town, "quick", run_sh="touch ran\n")
    db = ledger_path(town)
    db.parent.mkdir()
    if damage == "empty":
        db.write_bytes(b"")
    elif damage == "garbage":
        db.write_bytes(b"\x00garbage" + random.Random(7).randbytes(3 * 4096))
    else:
        ledger_with_runs(db)
        whole = db.read_bytes()
        assert len(whole) > 10 * 4096
        db.write_bytes(whole[: 3 * 4096])  # a copy cut short: header intact, most pages missing
    before = db.read_bytes()

    listing = gtui(town, "plugin", "list")
    one_error_line(listing, str(db))
    assert "move it aside" in listing.err.lower()
    assert listing.out == ""

    patrol = gtui(town, "--once", "--wait", "--json")
    line = one_error_line(patrol, str(db))
    assert "move it aside" in line.lower()
    json_error(patrol, str(db))

    assert db.read_bytes() == before, "gtui changed a ledger it refused"
    assert not (directory / "ran").exists(), "a patrol ran a plugin it could never record"


@contextlib.contextmanager
def full_state_dir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A town with a run, an escalation and an event, its ``.gtui`` moved onto a small tmpfs filled to the last block.

    Yields the town and the filler file (delete it to make room again).
    """
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "quick", run_sh="echo ran\n")
    assert gtui(town, "plugin", "run", "quick", "--json").code == 0
    assert gtui(town, "escalate", "raised before the disk filled", "--severity", "low", "--json").code == 0
    assert gtui(town, "event", "emit", "before").code == 0
    stop_kennels_under(tmp_path)  # the kennel the run started lets go of the ledger: the files are whole, the WAL folded in
    saved = tmp_path / "saved"
    shutil.copytree(state_dir(town), saved)
    assert not (saved / "ledger.db-wal").exists()
    with tmpfs(state_dir(town), "512k"):
        shutil.copytree(saved, state_dir(town), dirs_exist_ok=True)
        yield town, fill(state_dir(town))


def test_a_full_disk_refuses_writes_in_one_line_and_loses_nothing(tmp_path: Path) -> None:
    db = ledger_path(tmp_path / "town")
    with full_state_dir(tmp_path) as (town, filler):
        for args in (("event", "emit", "during"), ("escalate", "raised while the disk was full", "--severity", "low")):
            line = one_error_line(gtui(town, *args), str(db))
            assert "disk full" in line, line

        filler.unlink()
        assert gtui(town, "event", "emit", "after").code == 0
        assert gtui(town, "escalate", "raised after the disk had room", "--severity", "low", "--json").code == 0

        book = open_ledger(db, readonly=True)
        try:
            events = sorted(bead.title for bead in book.beads("event"))
            escalations = sorted(bead.title for bead in book.beads("escalation"))
            results = [run.result for run in book.runs("quick")]
        finally:
            book.close()
    assert events == ["after", "before"]  # nothing half-written by the refused attempts
    assert escalations == ["raised after the disk had room", "raised before the disk filled"]
    assert results == ["success"]


def test_a_full_disk_still_answers_reads(tmp_path: Path) -> None:
    with full_state_dir(tmp_path) as (town, _):
        listing = gtui(town, "plugin", "list", "--json")
        assert listing.code == 0, listing.err
        (quick,) = listing.json()["plugins"]
        assert (quick["name"], quick["run_count"], quick["last_run"]["result"]) == ("quick", 1, "success")
        escalations = gtui(town, "escalate", "list", "--json")
        assert escalations.code == 0, escalations.err
        assert [item["subject"] for item in escalations.json()["escalations"]] == ["raised before the disk filled"]


WRITER_THAT_DIES = """
import sys, time
from gtcore.escalation.escalations import Escalations
from gtcore.storage import open_ledger
from gtcore.town.layout import Town
town = Town(__import__("pathlib").Path(sys.argv[1]))
book = open_ledger(town.ledger_path)
run = book.claim_run("quick", "town")
book.close_run(run.id, "success", data={"exit_code": 0})
Escalations(town, book).raise_("written by a writer that died", "low", now=time.time())
print("written", flush=True)
time.sleep(60)
"""


def read_everything(town: Path) -> dict[str, Any]:
    """The four read commands, each required to answer (exit 0) with JSON."""
    answers = {}
    for key, args in (("plugins", ("plugin", "list")), ("history", ("plugin", "history", "quick")),
                      ("escalations", ("escalate", "list")), ("dogs", ("dog", "list"))):
        done = gtui(town, *args, "--json")
        assert done.code == 0, f"gtui {' '.join(args)}: {done.err}"
        answers[key] = done.json()
    return answers


@pytest.mark.parametrize("side_files", ["closed cleanly", "left by a killed writer"])
def test_reads_answer_from_a_read_only_state_directory(tmp_path: Path, side_files: str) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "quick", run_sh="echo ran\n")
    for _ in range(2):
        assert gtui(town, "plugin", "run", "quick", "--json").code == 0
    assert gtui(town, "escalate", "read me", "--severity", "low", "--json").code == 0
    stop_kennels_under(tmp_path)  # the kennel the runs started lets go of the ledger
    db = ledger_path(town)
    wal, shm = db.with_name("ledger.db-wal"), db.with_name("ledger.db-shm")
    assert not wal.exists() and not shm.exists()
    expected_runs, expected_subjects = 2, ["read me"]
    if side_files == "left by a killed writer":
        writer = subprocess.Popen([sys.executable, "-c", WRITER_THAT_DIES, str(town)], stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "written\n"
        finally:
            writer.kill()
            writer.wait()
        assert wal.exists() and shm.exists()  # its last records are in the WAL only
        expected_runs, expected_subjects = 3, ["written by a writer that died", "read me"]
    history_ids = None

    with read_only(state_dir(town)):
        for attempt in range(2):
            answers = read_everything(town)
            (quick,) = answers["plugins"]["plugins"]
            assert (quick["name"], quick["run_count"], quick["last_run"]["result"]) == ("quick", expected_runs, "success"), attempt
            ids = [run["id"] for run in answers["history"]["runs"]]
            assert len(ids) == expected_runs and [run["result"] for run in answers["history"]["runs"]] == ["success"] * expected_runs
            assert history_ids in (None, ids)
            history_ids = ids
            assert [item["subject"] for item in answers["escalations"]["escalations"]] == expected_subjects
            assert [(dog["state"], dog["plugin"]) for dog in answers["dogs"]["dogs"]] == [("idle", None), ("idle", None)]
        if side_files == "closed cleanly":
            assert not wal.exists() and not shm.exists()


def test_a_held_write_lock_blocks_no_reader_and_a_writer_names_its_holder(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "quick", run_sh="echo ran\n")
    assert gtui(town, "plugin", "run", "quick", "--json").code == 0
    db = ledger_path(town)

    with lock_held_by_child(db) as holder:
        listing, took = timed(town, "plugin", "list", "--json")
        assert listing.code == 0, listing.err
        assert listing.json()["plugins"][0]["run_count"] == 1
        assert took < 2.0, f"a reader waited {took:.1f}s behind a writer"

        emit, took = timed(town, "event", "emit", "x")
        one_error_line(emit, str(db), f"held by pid {holder.pid}")
        assert 9.0 <= took < 14.0, f"the writer gave up after {took:.1f}s (bounded wait: 10s)"
    assert gtui(town, "event", "emit", "x").code == 0


# -- runs ---------------------------------------------------------------------------------------------------------

DAEMON = "setsid bash -c 'echo $$ > daemon.pid; exec sleep 300' > /dev/null 2>&1 < /dev/null &\n"
DEAF_DAEMON = "setsid bash -c 'trap \"\" TERM; echo $$ > daemon.pid; exec sleep 300' > /dev/null 2>&1 < /dev/null &\n"
DOUBLE_FORK = "( sleep 300 > /dev/null 2>&1 & echo $! > daemon.pid ) &\n"


def until_written(name: str) -> str:
    """Shell: wait until a background child has written its pid file (the leader must not exit before)."""
    return f"until [ -s {name} ]; do sleep 0.01; done\n"


def pid_files(directory: Path) -> list[int]:
    return [int(path.read_text()) for path in directory.glob("*.pid") if path.read_text().strip().isdigit()]


def clean_up(directory: Path, token: str) -> None:
    """Kill whatever a test's run may have left (each pid's group, then anything with the run's token)."""
    for pid in pid_files(directory):
        kill_group(pid)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    kill_token_holders(token)


def token_of(town: Path, name: str) -> str:
    (run, *_) = runs(town, name)
    return str(run.data.get("token", ""))


@pytest.mark.parametrize(("script", "escaped"), [(DAEMON, True), (DEAF_DAEMON, True), (DOUBLE_FORK, False)],
                         ids=["setsid daemon", "setsid daemon ignoring SIGTERM", "double fork"])
def test_nothing_a_run_starts_outlives_it(tmp_path: Path, script: str, escaped: bool) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    directory = add_plugin(town, "leaver", MANUAL, script + until_written("daemon.pid") + "echo leaving\n")
    token = ""
    try:
        done = gtui(town, "plugin", "run", "leaver", "--json")
        token = token_of(town, "leaver")
        run = done.json()
        assert done.code == 0, done.err
        assert (run["result"], run["exit_code"]) == ("success", 0), run
        daemon = read_pid(directory / "daemon.pid")
        assert gone(daemon), f"{daemon} outlived its run (state {proc_state(daemon)})"
        log = Path(run["log"]).read_text()
        assert "leaving" in log
        if escaped:
            marks = [line for line in log.splitlines() if line.startswith("[gtui: ")]
            assert any("killed" in line for line in marks), log
        assert token_holders(token) == []
    finally:
        clean_up(directory, token)


def test_a_timeout_ends_the_run_and_its_daemon(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    directory = add_plugin(town, "sleeper", MANUAL, DAEMON + until_written("daemon.pid") + "sleep 30\n", execution='timeout = "1s"')
    token = ""
    try:
        done = gtui(town, "plugin", "run", "sleeper", "--json")
        token = token_of(town, "sleeper")
        run = done.json()
        assert done.code == 1, done.err
        assert run["result"] == "timeout", run
        daemon = read_pid(directory / "daemon.pid")
        assert gone(daemon), f"daemon {daemon} outlived the timed-out run"
        assert "[gtui: timed out" in Path(run["log"]).read_text()
        assert token_holders(token) == []
    finally:
        clean_up(directory, token)


ORPHANING_RUN = (
    "echo $$ > leader.pid\n"
    + DAEMON
    + "sleep 300 > /dev/null 2>&1 &\n"
    + "echo $! > grandchild.pid\n"
    + until_written("daemon.pid")
    + "sleep 30\n"
)


@pytest.mark.parametrize("leader", ["still running", "already exited"])
def test_a_kennel_killed_mid_run_leaves_nothing_of_it_after_the_next_patrol(tmp_path: Path, leader: str) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    directory = add_plugin(town, "slow", 'type = "event"\non = "go"', ORPHANING_RUN)
    assert gtui(town, "--once", "--json", "--event", "go").code == 0
    token = ""
    try:
        in_flight = wait_for(lambda: taken(town, "slow"), 15, "the kennel to take the slow run")
        token = in_flight.data["token"]
        pids = {name: read_pid(directory / f"{name}.pid") for name in ("leader", "grandchild", "daemon")}
        victim = kennel_pid(town)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: gone(victim), 5, "the kennel to die")
        if leader == "already exited":
            os.kill(pids["leader"], signal.SIGKILL)
            wait_for(lambda: gone(pids["leader"]), 5, "the leader to die")
        else:
            assert not gone(pids["leader"])
        assert not gone(pids["grandchild"]) and not gone(pids["daemon"])  # what the next patrol has to find

        after = gtui(town, "--once", "--json")
        assert after.code == 1, after.err  # the abandoned run is among what finished
        assert after.json()["abandoned"] == [in_flight.ref]
        (run,) = runs(town, "slow")
        assert run.result == "abandoned"
        assert "its leftover processes were killed" in run.data["reason"], run.data["reason"]
        for name, pid in pids.items():
            wait_for(lambda pid=pid: gone(pid), 2, f"the {name} ({pid}) of the abandoned run to be gone")
        assert token_holders(token) == []
    finally:
        clean_up(directory, token)


def test_a_log_that_cannot_be_written_keeps_the_runs_result(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    directory = add_plugin(town, "chatty", MANUAL, "yes 'a line of output for a log with no room' | head -c 1000000\necho done\n")
    token = ""
    try:
        with tmpfs(state_dir(town) / "runs", "64k"):
            done = gtui(town, "plugin", "run", "chatty", "--json")
            token = token_of(town, "chatty")
        run = done.json()
        assert done.code == 0, done.err
        assert (run["result"], run["exit_code"]) == ("success", 0), run
        assert "could not be written" in (run["reason"] or ""), run
        assert "disk full" in run["reason"], run
        assert token_holders(token) == []
    finally:
        clean_up(directory, token)


# -- delivery -----------------------------------------------------------------------------------------------------


def escalation_settings(town: Path, settings: dict[str, Any] | str) -> Path:
    """Write ``settings/escalation.json``: a dict as JSON, a string as written (to break it)."""
    path = town / "settings" / "escalation.json"
    path.write_text(settings if isinstance(settings, str) else json.dumps(settings), encoding="utf-8")
    return path.resolve()


@contextlib.contextmanager
def stuck_channels(town: Path) -> Iterator[tuple[TricklingSmtp, HangingWebhook, HangingWebhook]]:
    """Route high escalations to an SMTP server that trickles and two webhooks that never answer."""
    with TricklingSmtp() as smtp, HangingWebhook() as sms, HangingWebhook() as slack:
        escalation_settings(town, {
            "routes": {"high": ["bead", "email:human", "sms:human", "slack"]},
            "contacts": {"human_email": "a@b.c", "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "human_sms": "+1555",
                         "sms_webhook": sms.url("/sms"), "slack_webhook": slack.url("/slack")},
        })
        yield smtp, sms, slack


def startup(town: Path) -> float:
    """How long a command that delivers nothing takes here: the part of a wall time that is not waiting."""
    done, took = timed(town, "plugin", "list", "--json")
    assert done.code == 0, done.err
    return took


def test_stuck_channels_cost_one_deadline_and_are_recorded_as_failed(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    base = startup(town)
    with stuck_channels(town) as servers:
        raised, took = timed(town, "escalate", "Something broke", "--severity", "high", "--json")
        assert raised.code == 1 and raised.json()["status"] == "partial_failure", raised.err  # recorded, not delivered
        assert len(raised.err.splitlines()) == 3 and "no answer within 2s" in raised.err
        assert took - base < DEADLINE + 1.5, f"raising took {took:.1f}s (deadline {DEADLINE:g}s, start-up {base:.1f}s)"
        assert all(server.connections for server in servers), "a channel was never even tried"
        (escalation,) = gtui(town, "escalate", "list", "--json").json()["escalations"]
    assert escalation["subject"] == "Something broke"
    outcomes = {item["channel"]: item for item in escalation["deliveries"]}
    assert outcomes["bead"]["ok"] is True
    failed = {channel: outcomes[channel]["error"] for channel in ("email:human", "sms:human", "slack") if not outcomes[channel]["ok"]}
    assert set(failed) == {"email:human", "sms:human", "slack"}, outcomes
    off_deadline = {channel: error for channel, error in failed.items() if "no answer within 2s" not in error}
    assert not off_deadline, f"not failed on the delivery deadline: {off_deadline}"


def test_a_stuck_delivery_stalls_neither_the_patrol_nor_its_runs(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "quick", run_sh="echo quick\n")
    escalation_settings(town, '{"routes": {"high": ["bead"]')  # not JSON: the route cannot be read
    waiting = gtui(town, "escalate", "Something broke", "--severity", "high", "--json")
    assert waiting.code != 0 and waiting.json()["created"] is True  # recorded; its deliveries wait for the route
    base = startup(town)
    with stuck_channels(town):
        patrol, took = timed(town, "--once", "--wait", "--json")
    report = patrol.json()
    (entry,) = report["plugins"]
    assert entry["run"]["result"] == "success", entry
    assert entry["run"]["duration_s"] < DEADLINE, entry["run"]
    assert took - base < DEADLINE + 3.0, f"the patrol took {took:.1f}s with one delivery deadline of {DEADLINE:g}s"
    assert report["problems"], report
    assert all(problem["file"].endswith("escalation.json") for problem in report["problems"]), report["problems"]
    assert all(waiting.json()["id"] in problem["reason"] for problem in report["problems"]), report["problems"]
    assert patrol.code == 1, patrol.err


def test_broken_escalation_settings_are_a_problem_of_the_patrol(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    add_plugin(town, "quick", run_sh="echo quick\n")
    path = escalation_settings(town, {"routes": {"high": ["pigeon"]}})
    patrol = gtui(town, "--once", "--wait", "--json")
    assert patrol.code == 1, (patrol.code, patrol.err)
    report = patrol.json()
    problems = [problem for problem in report["problems"] if problem["field"] == "routes.high[0]"]
    assert [(problem["file"], problem["level"]) for problem in problems] == [(str(path), "error")], report["problems"]
    assert "pigeon" in problems[0]["reason"]
    assert f"{path}: field 'routes.high[0]'" in patrol.err, patrol.err
    assert report["plugins"][0]["run"]["result"] == "success"  # the patrol itself went on


def test_a_misspelt_setting_is_a_warning_with_a_hint(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS + "dog = 1\n")
    add_plugin(town, "quick", run_sh="echo quick\n")
    patrol = gtui(town, "--once", "--wait", "--json")
    assert patrol.code == 0, patrol.err
    (problem,) = [problem for problem in patrol.json()["problems"] if problem["field"] == "dog"]
    assert problem["level"] == "warning" and problem["file"].endswith("gtui.toml"), problem
    assert "did you mean 'dogs'" in problem["reason"], problem
    assert "gtui: warning: " in patrol.err and "'dog'" in patrol.err, patrol.err


# -- the terminal -------------------------------------------------------------------------------------------------

HOSTILE_SUBJECT = "Something \x1b]52;c;SGVsbG8=\x07 went \x1b[2J wrong"


def coloured(town: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``gtui`` as a colour terminal would run it (Rich colours), output kept as bytes."""
    env = {key: value for key, value in gtui_env().items() if key != "NO_COLOR"}
    env.update(TERM="xterm", FORCE_COLOR="1")
    done = subprocess.run(gtui_argv(town, *args), capture_output=True, env=env, timeout=60)
    assert b"Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def test_escape_sequences_in_an_escalation_never_reach_the_terminal(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", SETTINGS)
    escalation_settings(town, {"stale_threshold": "1s"})
    book = open_ledger(ledger_path(town))
    try:
        escalation, _ = Escalations(Town(town), book).raise_(HOSTILE_SUBJECT, "low", now=time.time())
    finally:
        book.close()
    assert "\x1b]52" in escalation.subject  # stored as given: only the terminal must never see it
    time.sleep(1.1)  # stale now
    printed = b""
    for args in (("escalate", "show", escalation.ref), ("escalate", "list"), ("escalate", "stale", "--dry-run")):
        done = coloured(town, *args)
        assert done.returncode == 0, done.stderr
        shown = done.stdout + done.stderr
        assert b"\x1b]" not in shown, f"gtui {' '.join(args)} printed an OSC sequence: {shown!r}"
        assert b"\x1b[2J" not in shown, f"gtui {' '.join(args)} printed clear-screen: {shown!r}"
        assert b"Something" in done.stdout and b"wrong" in done.stdout, done.stdout
        printed += done.stdout
    assert b"would go low -> medium" in printed
    assert b"\x1b[" in printed, "Rich did not colour: the escape filter was not exercised"


def test_markup_in_the_town_path_is_shown_as_written(tmp_path: Path) -> None:
    town = make_town(tmp_path / "[red]town[" / "red]", SETTINGS)
    add_plugin(town, "quick", run_sh="echo quick\n")
    patrol = gtui(town, "--once", "--wait")
    assert patrol.code == 0, patrol.err
    assert "[red]town[/red]" in patrol.out, patrol.out


# -- crash reports -------------------------------------------------------------------------------


def test_an_internal_error_is_one_line_and_its_report_lands_in_the_town(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A bug in a command: one line naming the report; the traceback is in <town>/.gtui/crash/, never on the screen."""
    from gtui import cli
    from gtui.cli import commands

    town = make_town(tmp_path / "town")

    def broken(ctx: object) -> int:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(commands, "cmd_dog_list", broken)  # the table names the handler; it is looked up when it runs
    assert cli.main(["--town", str(town), "dog", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gtui: error: internal error (a bug in gtui): RuntimeError: boom second line")
    (report,) = (town / ".gtui" / "crash").glob("crash-*.txt")
    assert str(report) in err and "Traceback" in report.read_text() and "Traceback" not in err


def test_crash_reports_keep_only_the_newest_twenty(tmp_path: Path) -> None:
    from gtcore.core.errors import CRASH_REPORTS_KEPT, save_crash_report

    directory = tmp_path / "crash"
    for n in range(CRASH_REPORTS_KEPT + 5):
        stale = directory / f"crash-old-{n:02d}.txt"
        directory.mkdir(exist_ok=True)
        stale.write_text("old")
        os.utime(stale, (1_000_000 + n, 1_000_000 + n))
    said = save_crash_report(directory, "Traceback: newest")
    kept = sorted(directory.glob("crash-*.txt"))
    assert len(kept) == CRASH_REPORTS_KEPT
    assert any(path.read_text() == "Traceback: newest" for path in kept) and said.startswith("details in ")
    assert not (directory / "crash-old-00.txt").exists()  # the oldest went first
