"""Several hosts, one town: run leases, host identity (GT_HOST), pinned plugins, three patrols racing on one ledger.

Every test runs on each storage backend (the ``storage`` fixture): on
PostgreSQL the hosts share a server, on SQLite one file.  The hosts are gtui
processes with different ``GT_HOST`` on this machine; a host is killed with
SIGKILL, so nothing of it can say goodbye.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from enginekit import add_plugin, claim_running, gtui_argv, gtui_env, ledger, make_town, runs, taken, wait_for
from faultkit import kill_token_holders
from kennelkit import kennel_pid, start_kennel, stop_kennels_under
from servers import WebhookServer

from gtcore.core.errors import GtError
from gtcore.dogs import processes
from gtcore.engine import Engine
from gtcore.storage.testing import insert_old_run
from gtcore.town.layout import Town

pytestmark = pytest.mark.usefixtures("storage")  # every test here runs against each storage backend

LEASED = 'dogs = 4\nkill_grace = "1s"\nrun_lease = "2s"\n'


def as_host(host: str, town: Path, *args: str) -> subprocess.Popen[str]:
    """``gtui --town TOWN ARGS`` as host ``host`` (its own process group, so it can be killed whole)."""
    env = {**gtui_env(), "GT_HOST": host}
    return subprocess.Popen(gtui_argv(town, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def patrol_as(host: str, town: Path) -> dict:
    proc = as_host(host, town, "--once", "--wait", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 1), err
    return json.loads(out)


def test_a_run_of_another_host_is_kept_while_its_lease_lasts_and_abandoned_when_it_runs_out(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", LEASED)
    add_plugin(town, "idle", 'type = "manual"')
    book = ledger(town)
    owner = {"host": "build-box", "pid": 4242, "start": 1}
    fresh = claim_running(book, "fresh", "town", data={"owner": owner}, lease=60)
    lapsed = claim_running(book, "lapsed", "town", data={"owner": owner}, lease=-5)
    insert_old_run(town / ".gtui" / "ledger.db", "unleased", "running", time.time(), {"owner": owner})  # before leases
    (old,) = book.runs("unleased")
    engine = Engine(Town.locate(town))
    try:
        report = engine.patrol_once()
    finally:
        engine.close()
    assert [run.ref for run in report.abandoned] == [lapsed.ref]
    assert "lease of its owner (process 4242 on build-box) ran out" in book.get(lapsed.id).data["reason"]
    assert [book.get(run.id).status for run in (fresh, old)] == ["running", "running"]


def test_a_long_run_renews_its_lease_so_no_host_takes_it_from_a_living_owner(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", LEASED)
    add_plugin(town, "slow", run_sh="sleep 3\n")
    engine = Engine(Town.locate(town))
    start_kennel(town)
    try:
        queued = engine.run_plugin("slow")
        claimed = wait_for(lambda: taken(town, "slow"), 5, "the take")
        first = claimed.data["lease_until"]
        assert first - claimed.data["started_at"] == pytest.approx(2.0, abs=0.1)
        wait_for(lambda: ledger(town).get(claimed.id).data["lease_until"] > first, 5, "a renewal")
        assert patrol_as("other-host", town)["abandoned"] == [], "another host leaves a renewed run alone"
        assert engine.wait_runs([queued.id], timeout=30)[queued.id].result == "success"
    finally:
        engine.close()


def test_a_run_pinned_to_a_host_waits_for_that_host_s_kennel_never_another_s(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    town = make_town(tmp_path / "town", LEASED)
    add_plugin(town, "build", execution='hosts = ["build-box"]')
    monkeypatch.setenv("GT_HOST", "laptop")
    assert processes.hostname() == "laptop"
    engine = Engine(Town.locate(town))
    laptop = start_kennel(town)  # laptop's kennel is alive, and idle
    assert laptop is not None
    try:
        (item,) = engine.patrol_once().plugins
        assert (item.decision.open, item.dispatched) == (True, True)
        assert item.note == "pinned to build-box: queued for their kennels, not laptop's"
        time.sleep(1.0)  # laptop's kennel looks at the queue four times a second: it never takes it
        (waiting,) = runs(town, "build")
        assert waiting.status == "queued"
        with pytest.raises(GtError, match="already has a run in flight"):
            engine.run_plugin("build", force=True)
    finally:
        engine.close()
    report = patrol_as("build-box", town)  # build-box's first command starts build-box's kennel, which takes it
    assert report["abandoned"] == []
    done = wait_for(lambda: runs(town, "build")[0].status == "closed" and runs(town, "build")[0], 15, "build-box to run it")
    assert (done.id, done.result, done.data["owner"]["host"]) == (waiting.id, "success", "build-box")


HOST_ROUNDS = 10  # rounds of three hosts racing for the plugins new in each round


def test_three_hosts_run_every_open_plugin_exactly_once_and_a_killed_host_s_run_is_taken_over(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town", LEASED)
    hosts = ("alpha-host", "beta-host", "gamma-host")
    for round_ in range(HOST_ROUNDS):  # every round a new set of plugins opens once, and three patrols race for it
        names = [f"p{round_}-{n}" for n in range(3)]
        for name in names:
            add_plugin(town, name, run_sh="echo ran\n")
        procs = [as_host(host, town, "--once", "--wait", "--json") for host in hosts]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        for name in names:
            assert [run.result for run in runs(town, name)] == ["success"], f"round {round_}: {name}"
    owners = {run.data["owner"]["host"] for round_ in range(HOST_ROUNDS) for n in range(3) for run in runs(town, f"p{round_}-{n}")}
    assert owners <= set(hosts)

    slow = add_plugin(town, "slow", 'type = "cooldown"\nduration = "1s"', "")
    (slow / "run.sh").write_text(f'if [ ! -e {slow}/first ]; then touch {slow}/first; sleep 30; fi\n', encoding="utf-8")  # once slow
    queued = as_host("alpha-host", town, "--once", "--json")  # queues it and returns: a kennel takes it
    queued.communicate(timeout=60)
    run = wait_for(lambda: taken(town, "slow"), 20, "a kennel's run of slow")
    token, victim = run.data["token"], run.data["owner"]["host"]
    survivor = next(host for host in hosts if host != victim)
    try:
        os.kill(kennel_pid(town, victim), signal.SIGKILL)  # the host goes away: no goodbye, no renewal
        killed_at = time.monotonic()
        while ledger(town).get(run.id).status == "running":
            assert time.monotonic() - killed_at < 2.0 + 5, "the lease (2s) and one patrol later the run must be abandoned"
            patrol_as(survivor, town)
        assert ledger(town).get(run.id).result == "abandoned"
        wait_for(lambda: len(runs(town, "slow")) >= 2, 10, "the plugin running again")
        again = [other for other in runs(town, "slow") if other.id != run.id]
        assert len(again) == 1 and again[0].data["owner"]["host"] != victim
    finally:
        kill_token_holders(token)
        for other in runs(town, "slow"):
            kill_token_holders(other.data.get("token", ""))


def test_a_failure_seen_by_three_hosts_is_delivered_once(tmp_path: Path, webhook: WebhookServer) -> None:
    town = make_town(tmp_path / "town", LEASED)
    settings = {"routes": {"high": ["bead", "slack"]}, "contacts": {"slack_webhook": webhook.url("/slack")}}
    (town / "settings" / "escalation.json").write_text(json.dumps(settings), encoding="utf-8")
    add_plugin(town, "breaks", run_sh="echo broken >&2; exit 1\n", execution='notify_on_failure = true\nseverity = "high"')
    procs = [as_host(host, town, "--once", "--wait", "--json") for host in ("alpha-host", "beta-host", "gamma-host")]
    for proc in procs:
        proc.communicate(timeout=60)
    for host in ("alpha-host", "beta-host", "gamma-host"):  # later patrols retry what is due: nothing is
        patrol_as(host, town)
    assert [run.result for run in runs(town, "breaks")] == ["failure"]
    wait_for(lambda: webhook.posts_to("/slack"), 10, "the delivery")
    time.sleep(0.5)
    assert len(webhook.posts_to("/slack")) == 1


def test_a_run_s_log_is_printed_on_any_host_of_a_shared_ledger(tmp_path: Path, storage: str) -> None:
    if storage != "postgresql":
        pytest.skip("one host's SQLite ledger: its logs are the files beside it")
    town = make_town(tmp_path / "town", LEASED)
    add_plugin(town, "chatty", run_sh="echo line one; echo line two >&2\n")
    report = patrol_as("build-box", town)
    (entry,) = report["plugins"]
    Path(entry["run"]["log"]).unlink()  # the file stays on build-box: this host has none
    proc = as_host("laptop", town, "plugin", "log", "chatty", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    shown = json.loads(out)
    assert shown["run"] == entry["run"]["id"] and "line one" in shown["log"] and "line two" in shown["log"]


def test_ledger_copy_moves_a_sqlite_town_into_postgresql_without_loss(tmp_path: Path, storage: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if storage != "postgresql":
        pytest.skip("a copy goes from the SQLite file into PostgreSQL")
    target = os.environ["GT_LEDGER_URL"]
    monkeypatch.delenv("GT_LEDGER_URL")  # the town starts on its SQLite file
    town = make_town(tmp_path / "town", LEASED)
    add_plugin(town, "steady", run_sh="echo steady output\n")
    add_plugin(town, "breaks", run_sh="exit 3\n", execution='notify_on_failure = true\nseverity = "high"')
    (town / "settings" / "escalation.json").write_text(json.dumps({"routes": {"high": ["bead", "slack"]},
                                                                   "contacts": {"slack_webhook": "http://127.0.0.1:9/none"}}))
    before = patrol_as("here", town)
    sqlite = ledger(town)

    def slack_tried() -> bool:  # the kennel delivers after the run: its refused attempt is on the escalation
        found = [bead for bead in sqlite.beads("escalation", limit=None)]
        return bool(found) and any(outcome["channel"] == "slack" for outcome in found[0].data.get("deliveries", []))

    wait_for(slack_tried, 15, "the kennel's delivery attempt")
    stop_kennels_under(tmp_path)  # nothing writes to the SQLite ledger while it is copied
    summary, beads = sqlite.plugin_summary(), [bead for part in sqlite.dump() for bead in part.beads]
    (escalation,) = [bead for bead in beads if bead.kind == "escalation"]
    assert escalation.data["pending"], "a delivery still waits (its webhook refused): it must survive the move"

    proc = as_host("here", town, "ledger", "copy", "--to", target, "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["copied"] == len(beads)
    again = as_host("here", town, "ledger", "copy", "--to", target)
    _, err = again.communicate(timeout=60)
    assert again.returncode != 0 and "already holds records" in err and "Traceback" not in err

    monkeypatch.setenv("GT_LEDGER_URL", target)
    shared = ledger(town)
    assert shared.plugin_summary() == summary
    assert [bead for part in shared.dump() for bead in part.beads] == beads, "every record, id, label and pending delivery"
    steady = next(entry["run"] for entry in before["plugins"] if entry["name"] == "steady")
    Path(steady["log"]).unlink()
    assert "steady output" in (shared.run_log(int(steady["id"].split("-")[1])) or ""), "the logs moved too"
    assert shared.claim_run("steady", "town").id > max(bead.id for bead in beads), "new ids follow the copied ones"


def test_another_host_s_commit_is_heard_at_once_where_the_ledger_can_tell(tmp_path: Path, storage: str) -> None:
    town = make_town(tmp_path / "town", LEASED)
    engine = Engine(Town.locate(town))
    start_kennel(town)
    heard = threading.Event()
    stop = engine.listen(heard.set)
    try:
        time.sleep(0.3)  # the listener's connection is up
        before = engine.changes()
        other = ledger(town)
        other.emit_event("deploy", source="another host")
        if storage == "postgresql":
            assert heard.wait(2.0), "LISTEN/NOTIFY: a control room wakes at the commit, not at its next poll"
        else:
            assert not heard.wait(0.3), "SQLite pushes nothing: its control rooms poll"
        assert engine.changes() != before, "and the change counter moved for those that poll"
    finally:
        stop()
        engine.close()


def test_an_unreachable_database_is_one_line_and_the_next_patrol_tries_again(tmp_path: Path, storage: str) -> None:
    town = make_town(tmp_path / "town", LEASED)
    add_plugin(town, "steady")
    env = {**gtui_env(), "GT_LEDGER_URL": "postgresql://gtui:secret@127.0.0.1:9/town"}  # nothing listens on port 9
    done = subprocess.run(gtui_argv(town, "--once", "--wait", "--json"), capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "cannot reach the server" in line and "the next patrol tries again" in line and "secret" not in done.stdout + line
    assert json.loads(done.stdout)["error"].startswith("ledger postgresql://gtui@127.0.0.1:9/town")
    report = patrol_as("here", town)  # the database back (the test's own ledger): the patrol runs what is due
    assert [entry["run"]["result"] for entry in report["plugins"]] == ["success"]
