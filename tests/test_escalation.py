"""Escalations end to end against real servers on 127.0.0.1: an aiosmtpd SMTP server and an HTTP webhook.

Timelines (backoff, stale re-escalation) use an injected clock (``now=``), never sleeps. Plugin
failure streaks go through the real engine: real ``run.sh`` processes on real dogs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from enginekit import add_plugin, gtui_argv, gtui_env, make_town, wait_for
from kennelkit import kennels_of_this_test, start_kennel
from servers import SmtpServer, WebhookServer, free_port

from gtcore.core.clock import iso
from gtcore.engine import Engine
from gtcore.escalation.escalations import FIRST_RETRY_SECONDS, LEASE_SECONDS, MAX_RETRY_SECONDS, OWED_GRACE, Escalation, Escalations
from gtcore.escalation.settings import load_escalation_settings
from gtcore.model import Bead
from gtcore.storage import open_ledger
from gtcore.storage.contract import OWED, Close, EscalationChange
from gtcore.storage.testing import lock_waiters
from gtcore.town.layout import Town
from gtcore.town.settings import SettingsError

pytestmark = [pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
              pytest.mark.usefixtures("storage")]  # every test here runs against each storage backend

T0 = 1_800_000_000.0  # the injected clock's start: a fixed moment, so every step is exact
MINUTE, HOUR = 60.0, 3600.0
HUMAN_EMAIL, HUMAN_SMS, SENDER = "overseer@town.example", "+15550100", "gtui@town.example"


# -- fixtures and helpers ---------------------------------------------------------------


def write_settings(town: Path, settings: dict[str, Any] | str) -> Path:
    """Write ``<town>/settings/escalation.json`` (a dict as JSON, a string as is)."""
    path = town / "settings" / "escalation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings if isinstance(settings, str) else json.dumps(settings, indent=2), encoding="utf-8")
    return path


def contacts(smtp_port: int, **extra: Any) -> dict[str, Any]:
    return {"human_email": HUMAN_EMAIL, "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_from": SENDER, **extra}


def service(town: Path) -> Escalations:
    """The escalation service as another process would open it: its own ledger connection."""
    located = Town.locate(town)
    return Escalations(located, open_ledger(located.ledger_path))


def reread(town: Path, escalation: Escalation) -> Escalation:
    return service(town).get(escalation.ref)


def deliveries(escalation: Escalation, channel: str) -> list[dict[str, Any]]:
    return [item for item in escalation.deliveries if item["channel"] == channel]


def mail_to(town: Path, target: str) -> list[Bead]:
    return open_ledger(town / ".gtui" / "ledger.db").beads("mail", label=f"to:{target}", newest_first=False)


def patrol(town: Path, now: float) -> list[str]:
    """One patrol of a fresh engine at ``now``; returns the refs it re-escalated (and fails on warnings)."""
    engine = Engine(Town.locate(town))
    start_kennel(town)
    try:
        report = engine.patrol_once(now=now)
    finally:
        engine.close()
    assert report.warnings == []
    return report.reescalated


def history(escalation: Escalation) -> list[str]:
    return [item["event"] for item in escalation.bead.data.get("history", [])]


# -- delivery to real servers -----------------------------------------------------------


def test_a_high_escalation_arrives_as_exactly_one_email_and_one_sms(town: Path, smtp: SmtpServer, webhook: WebhookServer) -> None:
    write_settings(town, {
        "routes": {"high": ["bead", "email:human", "sms:human"], "critical": ["bead", "mail:mayor"]},  # re-escalated: no second email
        "contacts": contacts(smtp.port, human_sms=HUMAN_SMS, sms_webhook=webhook.url("/sms")),
    })
    escalation, created = service(town).raise_(
        "Refinery merge queue stuck", "high", body="No merge for 2h; polecat Toast is idle.", source="deacon", now=T0)

    assert created
    (message,) = smtp.messages
    email = message.email
    assert message.mail_from == SENDER and message.rcpt_tos == [HUMAN_EMAIL]
    assert email["From"] == SENDER and email["To"] == HUMAN_EMAIL
    assert "high" in email["Subject"].lower() and "Refinery merge queue stuck" in email["Subject"]
    assert "No merge for 2h; polecat Toast is idle." in message.body
    assert escalation.ref in message.body

    (sms,) = webhook.posts
    assert sms.path == "/sms" and sms.content_type == "application/json"
    assert set(sms.json) == {"to", "body"} and sms.json["to"] == HUMAN_SMS
    assert "Refinery merge queue stuck" in sms.json["body"]

    on_ledger = open_ledger(town / ".gtui" / "ledger.db").beads("escalation")
    assert [bead.ref for bead in on_ledger] == [escalation.ref]
    assert sorted((item["channel"], item["ok"], item["error"]) for item in escalation.deliveries) == [
        ("bead", True, None), ("email:human", True, None), ("sms:human", True, None)]
    assert escalation.failing_channels == [] and escalation.bead.data["pending"] == []

    # nothing is sent again by later patrols
    assert service(town).deliver_due(T0 + 10 * HOUR) == 0
    patrol(town, T0 + 11 * HOUR)
    assert len(smtp.messages) == 1 and len(webhook.posts) == 1


def test_smtp_down_the_bead_keeps_the_failure_and_the_next_patrol_delivers_it_once(town: Path) -> None:
    port = free_port()  # nothing listens here yet
    write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(port)})
    escalation, _ = service(town).raise_("Witness lost contact", "high", body="No heartbeat since 04:00.", source="deacon", now=T0)

    assert [bead.ref for bead in open_ledger(town / ".gtui" / "ledger.db").beads("escalation")] == [escalation.ref]
    (failed,) = deliveries(escalation, "email:human")
    assert failed["ok"] is False and f"127.0.0.1:{port}" in failed["error"]
    assert escalation.failing_channels == ["email:human"]
    listed = escalation.to_json(service(town).settings(), T0)
    assert listed["pending"] == ["email:human"]
    assert listed["deliveries"][-1] == {"channel": "email:human", "ok": False, "error": failed["error"], "at": iso(T0)}

    server = SmtpServer(port=port).start()
    try:
        patrol(town, T0 + FIRST_RETRY_SECONDS)
        (message,) = server.messages
        assert "Witness lost contact" in message.email["Subject"] and "No heartbeat since 04:00." in message.body
        assert f"raised {iso(T0)}" in message.body  # when it was raised, not when the retry went out
        after = reread(town, escalation)
        assert [item["ok"] for item in deliveries(after, "email:human")] == [False, True]
        assert after.failing_channels == [] and after.bead.data["pending"] == []

        patrol(town, T0 + 2 * HOUR)
        assert service(town).deliver_due(T0 + 3 * HOUR) == 0
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_a_failed_delivery_waits_for_its_backoff_then_is_retried(town: Path) -> None:
    port = free_port()
    write_settings(town, {"routes": {"medium": ["bead", "email:human"]}, "contacts": contacts(port)})
    escalations = service(town)
    escalation, _ = escalations.raise_("Deacon slow", "medium", now=T0)
    assert len(deliveries(escalation, "email:human")) == 1

    assert escalations.deliver_due(T0 + FIRST_RETRY_SECONDS - 1) == 0
    assert len(deliveries(reread(town, escalation), "email:human")) == 1
    assert escalations.deliver_due(T0 + FIRST_RETRY_SECONDS) == 1  # second attempt, still down: waits twice as long
    second = T0 + FIRST_RETRY_SECONDS
    assert [item["ok"] for item in deliveries(reread(town, escalation), "email:human")] == [False, False]

    server = SmtpServer(port=port).start()
    try:
        assert escalations.deliver_due(second + 2 * FIRST_RETRY_SECONDS - 1) == 0
        assert server.messages == []
        assert escalations.deliver_due(second + 2 * FIRST_RETRY_SECONDS) == 1
        assert len(server.messages) == 1
        assert [item["ok"] for item in deliveries(reread(town, escalation), "email:human")] == [False, False, True]
    finally:
        server.stop()


def test_retry_delays_double_up_to_the_cap(town: Path) -> None:
    write_settings(town, {"routes": {"low": ["bead", "email:human"]}, "contacts": contacts(free_port())})
    escalations = service(town)
    escalation, _ = escalations.raise_("Never reachable", "low", now=T0)
    now, delays = T0, []
    for _ in range(9):
        next_at = reread(town, escalation).bead.data["pending"][0]["next_at"]
        delays.append(next_at - now)
        now = next_at
        assert escalations.deliver_due(now) == 1
    assert delays[:4] == [FIRST_RETRY_SECONDS * 2 ** n for n in range(4)]
    assert max(delays) == MAX_RETRY_SECONDS
    assert len(deliveries(reread(town, escalation), "email:human")) == 10  # every attempt recorded, none dropped


def test_two_processes_retrying_at_once_send_a_delivery_once(town: Path) -> None:
    port = free_port()
    write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(port)})
    escalation, _ = service(town).raise_("Race", "high", now=T0)
    server = SmtpServer(port=port).start()
    try:
        workers = [service(town) for _ in range(4)]  # each with its own ledger connection, like separate processes
        barrier, attempted = threading.Barrier(len(workers)), []

        def retry(escalations: Escalations) -> None:
            barrier.wait()
            attempted.append(escalations.deliver_due(T0 + HOUR))

        threads = [threading.Thread(target=retry, args=(worker,)) for worker in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(attempted) == [0, 0, 0, 1]
        assert len(server.messages) == 1
        assert [item["ok"] for item in deliveries(reread(town, escalation), "email:human")] == [False, True]
    finally:
        server.stop()


def test_a_delivery_leased_by_a_process_that_died_is_retried_after_the_lease(town: Path) -> None:
    port = free_port()
    write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(port)})
    escalations = service(town)
    escalation, _ = escalations.raise_("Orphaned lease", "high", now=T0)  # SMTP down: retry due at T0 + 30s
    server = SmtpServer(port=port).start()
    try:
        due = T0 + FIRST_RETRY_SECONDS
        # another process leases the retry and dies before sending it: nothing is recorded
        leased = escalations.ledger.lease_deliveries(due, LEASE_SECONDS, route=lambda bead, severity: None)
        assert [delivery.channel for delivery in leased] == ["email:human"]
        assert escalations.deliver_due(due + 1) == 0 and server.messages == []  # nobody else sends it meanwhile
        assert escalations.deliver_due(due + LEASE_SECONDS) == 1
        assert len(server.messages) == 1
        assert [item["ok"] for item in deliveries(reread(town, escalation), "email:human")] == [False, True]
    finally:
        server.stop()


def test_closing_an_escalation_cancels_its_pending_deliveries(town: Path) -> None:
    port = free_port()
    write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(port)})
    escalations = service(town)
    escalation, _ = escalations.raise_("False alarm", "high", now=T0)
    closed = escalations.close(escalation.ref, reason="fixed by hand", now=T0 + 10)
    assert closed.status == "closed" and closed.bead.data["pending"] == []
    assert deliveries(closed, "email:human")[-1]["error"] == "not sent: closed before delivery"
    server = SmtpServer(port=port).start()
    try:
        assert escalations.deliver_due(T0 + HOUR) == 0
        assert server.messages == []
    finally:
        server.stop()


def test_a_webhook_answering_an_error_is_a_failed_delivery_retried_later(town: Path) -> None:
    hook = WebhookServer(status=503).start()
    try:
        write_settings(town, {"routes": {"high": ["bead", "sms:human"]},
                              "contacts": {"human_sms": HUMAN_SMS, "sms_webhook": hook.url("/sms")}})
        escalation, _ = service(town).raise_("Pager", "high", now=T0)
        (failed,) = deliveries(escalation, "sms:human")
        assert failed["ok"] is False and "HTTP 503" in failed["error"]
        assert escalation.failing_channels == ["sms:human"]
        assert len(hook.posts) == 1
    finally:
        hook.stop()


def test_a_new_streak_while_the_old_delivery_still_waits_sends_one_email(town: Path) -> None:
    port = free_port()
    write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(port)})
    escalations = service(town)
    escalation, _ = escalations.raise_("plugin x is failing", "high", source="plugin:x", now=T0)  # SMTP down: waits
    escalations.note(escalation.ref, event="recovered", detail="run-2 succeeded", now=T0 + 10, recovered=True)
    server = SmtpServer(port=port).start()
    try:
        again, _ = escalations.raise_("plugin x is failing", "high", source="plugin:x", now=T0 + 40)  # old retry due too
        assert len(server.messages) == 1
        assert escalations.deliver_due(T0 + HOUR) == 0 and len(server.messages) == 1
        assert [item["ok"] for item in deliveries(reread(town, again), "email:human")] == [False, True]
    finally:
        server.stop()


def test_deliveries_held_for_broken_settings_go_out_once_each(town: Path) -> None:
    write_settings(town, "{ not json")
    escalations = service(town)
    escalation, _ = escalations.raise_("plugin y is failing", "low", source="plugin:y", now=T0)
    escalations.note(escalation.ref, event="recovered", detail="run-2 succeeded", now=T0 + 10, recovered=True)
    escalations.raise_("plugin y is failing", "low", source="plugin:y", now=T0 + 20)
    write_settings(town, {"routes": {"low": ["bead", "log"]}})
    assert escalations.deliver_due(T0 + 30) == 1
    assert len((town / "logs" / "escalations.log").read_text().splitlines()) == 1


# -- dedup -------------------------------------------------------------------------------


def test_the_same_source_and_subject_counts_again_instead_of_a_second_escalation(town: Path, smtp: SmtpServer) -> None:
    write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(smtp.port)})
    escalations = service(town)
    first, created = escalations.raise_("Disk almost full", "high", body="92%", source="dog:alpha", now=T0)
    again, created_again = escalations.raise_("Disk  almost\nfull", "high", body="95%", source="dog:alpha", now=T0 + 5 * MINUTE)

    assert created and not created_again
    assert again.ref == first.ref and again.occurrences == 2
    assert again.to_json(escalations.settings(), T0 + 5 * MINUTE)["last_seen_at"] == iso(T0 + 5 * MINUTE)
    assert len(open_ledger(town / ".gtui" / "ledger.db").beads("escalation")) == 1
    assert len(smtp.messages) == 1  # counting again is not a second email

    other, created_other = escalations.raise_("Disk almost full", "high", source="dog:bravo", now=T0 + 6 * MINUTE)
    assert created_other and other.ref != first.ref and len(smtp.messages) == 2

    escalations.ack(first.ref, now=T0 + 7 * MINUTE)
    acked_again, _ = escalations.raise_("Disk almost full", "high", source="dog:alpha", now=T0 + 8 * MINUTE)
    assert acked_again.ref == first.ref and acked_again.occurrences == 3 and acked_again.status == "acked"

    escalations.close(first.ref, reason="cleaned /var", now=T0 + 9 * MINUTE)
    fresh, created_fresh = escalations.raise_("Disk almost full", "high", source="dog:alpha", now=T0 + 10 * MINUTE)
    assert created_fresh and fresh.ref not in (first.ref, other.ref) and fresh.occurrences == 1
    assert len(smtp.messages) == 3


# -- stale re-escalation -----------------------------------------------------------------


def raise_at_once(town: Path, key: str, processes: int = 3) -> list[dict[str, Any]]:
    """``gtui escalate ... --fingerprint KEY --json`` from several processes started together; their answers."""
    started = [subprocess.Popen(gtui_argv(town, "escalate", f"Mass agent death: {number + 3} agents down", "-s", "critical",
                                          "--fingerprint", key, "--json"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=gtui_env())
               for number in range(processes)]
    answers = []
    for proc in started:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        answers.append(json.loads(out))
    return answers


def test_one_fingerprint_raised_by_processes_at_once_is_one_escalation_until_it_is_closed(town: Path) -> None:
    """Gas Town's rule: an open escalation with the fingerprint suppresses the next; acknowledging keeps it; closing frees it."""
    def one_new(answers: list[dict[str, Any]]) -> str:
        (new,) = [answer for answer in answers if answer.get("created")]
        suppressed = [answer for answer in answers if answer is not new]
        assert all(answer == {"id": new["id"], "status": "duplicate_suppressed", "fingerprint": new["fingerprint"]}
                   for answer in suppressed), answers
        return new["id"]

    first = one_new(raise_at_once(town, "stuck-agent-dog:mass-death"))
    service(town).ack(first, now=T0)
    assert {answer["id"] for answer in raise_at_once(town, " stuck-agent-dog:mass-death ")} == {first}  # trimmed, as Gas Town
    assert {answer["status"] for answer in raise_at_once(town, "stuck-agent-dog:mass-death", 2)} == {"duplicate_suppressed"}
    assert reread(town, service(town).get(first)).occurrences == 8
    service(town).close(first, reason="polecats restarted", now=T0 + MINUTE)
    second = one_new(raise_at_once(town, "stuck-agent-dog:mass-death"))
    assert second != first
    assert one_new(raise_at_once(town, "stuck-agent-dog:deacon:stuck-heartbeat", 2)) not in (first, second)  # another key
    label = service(town).get(first).fingerprint
    assert label == service(town).get(second).fingerprint and label and label.startswith("escalation-fp:")
    assert sorted(item.status for item in service(town).list(include_closed=True, now=T0) if item.fingerprint == label) == [
        "closed", "open"]


def test_a_raise_racing_a_close_is_a_new_escalation_never_one_counted_on_the_closed_one(town: Path, storage: str) -> None:
    """Closing releases the fingerprint, even for a raise that found the escalation open just before the close committed."""
    if storage != "postgresql":
        pytest.skip("SQLite takes every write in turn (BEGIN IMMEDIATE): a raise never overlaps a close")
    url = os.environ["GT_LEDGER_URL"]
    first, _ = service(town).raise_("Mass agent death: 3 agents down", "critical", fingerprint="stuck-agent-dog:mass-death", now=T0)
    holding, answers = threading.Event(), []

    def close_when_the_raise_waits(bead: Bead) -> EscalationChange:
        holding.set()  # the close holds the escalation's row from here to its commit
        wait_for(lambda: lock_waiters(url) > 0, 30, "the raise to wait for the closing transaction")
        return EscalationChange({**bead.data, "close_reason": "polecats restarted"}, status="closed", drop_pending=True)

    def raise_again() -> None:
        holding.wait(30)
        answers.append(service(town).raise_("Mass agent death: 4 agents down", "critical",
                                            fingerprint="stuck-agent-dog:mass-death", now=T0 + MINUTE))

    raiser = threading.Thread(target=raise_again)
    raiser.start()
    closed = open_ledger(town / ".gtui" / "ledger.db").change_escalation(first.id, close_when_the_raise_waits, now=T0 + MINUTE)
    raiser.join(60)
    ((again, created),) = answers
    assert closed.status == "closed" and created and again.ref != first.ref and again.status == "open"
    assert reread(town, first).occurrences == 1 and reread(town, first).status == "closed"  # untouched by the raise


def timeline_settings(town: Path, smtp_port: int) -> None:
    write_settings(town, {
        "stale_threshold": "1h",
        "max_reescalations": 2,
        "routes": {"low": ["bead"], "medium": ["bead", "mail:mayor"], "high": ["bead", "mail:mayor", "email:human"]},
        "contacts": contacts(smtp_port),
    })


def test_a_stale_escalation_goes_up_one_severity_per_threshold_up_to_the_maximum(town: Path, smtp: SmtpServer) -> None:
    timeline_settings(town, smtp.port)
    escalations = service(town)
    escalation, _ = escalations.raise_("Polecat idle", "low", body="Toast has no work.", source="witness", now=T0)
    assert mail_to(town, "mayor") == [] and smtp.messages == []

    assert escalations.reescalate_stale(T0 + HOUR - 1) == []
    assert patrol(town, T0 + HOUR) == [escalation.ref]  # the patrol re-escalates and delivers
    medium = reread(town, escalation)
    assert (medium.severity, medium.original_severity, medium.reescalations) == ("medium", "low", 1)
    assert "severity:medium" in medium.bead.labels and "severity:low" not in medium.bead.labels
    (mail,) = mail_to(town, "mayor")
    assert "Polecat idle" in mail.title and "MEDIUM" in mail.title and "Toast has no work." in mail.body
    assert smtp.messages == []

    assert escalations.reescalate_stale(T0 + 2 * HOUR - 1) == []
    moves = escalations.reescalate_stale(T0 + 2 * HOUR)
    assert [(item.ref, old, new) for item, old, new in moves] == [(escalation.ref, "medium", "high")]
    high = reread(town, escalation)
    assert (high.severity, high.reescalations) == ("high", 2)
    assert [bead.title for bead in mail_to(town, "mayor")] == [mail.title, "[HIGH] Polecat idle"]
    (email,) = smtp.messages
    assert "high" in email.email["Subject"].lower() and "Polecat idle" in email.email["Subject"]

    for hours in (3, 4):
        assert escalations.reescalate_stale(T0 + hours * HOUR) == []
        assert patrol(town, T0 + hours * HOUR + 1) == []
    final = reread(town, escalation)
    assert (final.severity, final.reescalations) == ("high", 2)
    assert final.is_stale(escalations.settings(), T0 + 4 * HOUR)  # still stale, but at the maximum
    assert len(mail_to(town, "mayor")) == 2 and len(smtp.messages) == 1
    assert [item["detail"].split(":")[0] for item in final.bead.data["history"] if item["event"] == "re-escalated"] == [
        "low -> medium", "medium -> high"]


def test_critical_is_the_ceiling_and_zero_reescalations_means_never(town: Path) -> None:
    write_settings(town, {"stale_threshold": "30m", "max_reescalations": 5})
    escalations = service(town)
    critical, _ = escalations.raise_("Town on fire", "critical", now=T0)
    assert escalations.reescalate_stale(T0 + 10 * HOUR) == []
    assert reread(town, critical).severity == "critical"

    write_settings(town, {"stale_threshold": "30m", "max_reescalations": 0})
    low, _ = escalations.raise_("Minor", "low", now=T0)
    assert escalations.reescalate_stale(T0 + 10 * HOUR) == []
    assert reread(town, low).severity == "low"


def test_an_acknowledged_escalation_never_moves(town: Path, smtp: SmtpServer) -> None:
    timeline_settings(town, smtp.port)
    escalations = service(town)
    escalation, _ = escalations.raise_("Known issue", "low", now=T0)
    acked = escalations.ack(escalation.ref, now=T0 + MINUTE)
    assert acked.status == "acked" and "acknowledged" in history(acked)
    for hours in range(1, 6):
        assert escalations.reescalate_stale(T0 + hours * HOUR) == []
    assert patrol(town, T0 + 6 * HOUR) == []
    final = reread(town, escalation)
    assert (final.severity, final.reescalations, final.status) == ("low", 0, "acked")
    assert not final.is_stale(escalations.settings(), T0 + 6 * HOUR)
    assert escalations.list(stale_only=True, now=T0 + 6 * HOUR) == []
    assert mail_to(town, "mayor") == [] and smtp.messages == []


def test_a_dry_run_changes_nothing_and_the_stale_filter_lists_only_stale_ones(town: Path, smtp: SmtpServer) -> None:
    timeline_settings(town, smtp.port)
    escalations = service(town)
    old, _ = escalations.raise_("Old", "low", now=T0)
    new, _ = escalations.raise_("New", "low", now=T0 + 50 * MINUTE)
    before = reread(town, old).bead

    moves = escalations.reescalate_stale(T0 + HOUR, dry_run=True)
    assert [(item.ref, was, to) for item, was, to in moves] == [(old.ref, "low", "medium")]
    assert reread(town, old).bead == before
    assert mail_to(town, "mayor") == []

    assert [item.ref for item in escalations.list(stale_only=True, now=T0 + HOUR)] == [old.ref]
    assert {item.ref for item in escalations.list(now=T0 + HOUR)} == {old.ref, new.ref}
    assert [item.ref for item in escalations.list(stale_only=True, now=T0 + 2 * HOUR)] == [new.ref, old.ref]


# -- plugin failure streaks ------------------------------------------------------------

FAILING = """n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count
echo "checking refinery, attempt $n"
echo "ERROR: merge queue jammed ($n)"
exit 3
"""
PASSING = 'echo "all good"\n'


def run_plugin(engine: Engine, name: str) -> Bead:
    """Run ``name`` (through the kennel beside the test) and let the deliveries its escalation started land (they go on
    after the run, off the dog, in the kennel)."""
    queued = engine.run_plugin(name)
    ended = engine.wait_runs([queued.id], timeout=30)[queued.id]
    for house in kennels_of_this_test():
        house.engine.escalations.settle()
    return ended


def plugin_escalations(town: Path, name: str) -> list[Escalation]:
    return [item for item in service(town).list(include_closed=True, now=T0) if item.source == f"plugin:{name}"]


def test_a_failing_plugin_escalates_once_per_failure_streak(town: Path, smtp: SmtpServer) -> None:
    make_town(town)
    write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(smtp.port)})
    plugin_dir = add_plugin(town, "refinery-check", 'type = "manual"', FAILING, execution='notify_on_failure = true\nseverity = "high"')
    add_plugin(town, "quiet", 'type = "manual"', "exit 1\n", execution='notify_on_failure = false\nseverity = "critical"')
    engine = Engine(Town.locate(town))
    start_kennel(town)
    try:
        runs = [run_plugin(engine, "refinery-check") for _ in range(3)]
        assert [run.result for run in runs] == ["failure"] * 3
        (escalation,) = plugin_escalations(town, "refinery-check")
        assert (escalation.status, escalation.severity, escalation.occurrences) == ("open", "high", 3)
        assert escalation.subject == "plugin refinery-check is failing"
        assert runs[0].ref in escalation.bead.body and "ERROR: merge queue jammed (1)" in escalation.bead.body
        (email,) = smtp.messages
        assert "ERROR: merge queue jammed (1)" in email.body and "refinery-check" in email.email["Subject"]

        (plugin_dir / "run.sh").write_text(PASSING, encoding="utf-8")
        assert run_plugin(engine, "refinery-check").result == "success"
        recovered = reread(town, escalation)
        assert recovered.status == "open" and recovered.recovered_at is not None
        assert history(recovered)[-1] == "recovered"
        assert run_plugin(engine, "refinery-check").result == "success"
        assert history(reread(town, escalation)).count("recovered") == 1
        assert len(smtp.messages) == 1

        (plugin_dir / "run.sh").write_text(FAILING, encoding="utf-8")
        fourth = run_plugin(engine, "refinery-check")
        assert fourth.result == "failure"
        (again,) = plugin_escalations(town, "refinery-check")
        assert again.ref == escalation.ref and again.occurrences == 4 and again.recovered_at is None
        assert "failing again" in history(again)
        assert len(smtp.messages) == 2  # a new streak is delivered again
        assert fourth.ref in smtp.messages[1].body and "ERROR: merge queue jammed (4)" in smtp.messages[1].body
        assert run_plugin(engine, "refinery-check").result == "failure"
        assert len(smtp.messages) == 2 and reread(town, escalation).occurrences == 5

        for _ in range(2):
            assert run_plugin(engine, "quiet").result == "failure"
        assert plugin_escalations(town, "quiet") == []
    finally:
        engine.close()


# -- settings ----------------------------------------------------------------------------


BROKEN_SETTINGS = {
    "bad JSON": ('{\n  "routes": {"high": ["bead",]}\n}', ["line 2, column"]),
    "unknown severity": ({"routes": {"urgent": ["bead"]}}, ["'routes.urgent'", "severity"]),
    "bad stale_threshold": ({"stale_threshold": "4 hours"}, ["'stale_threshold'", "4 hours"]),
    "zero stale_threshold": ({"stale_threshold": "0s"}, ["'stale_threshold'"]),
    "negative max_reescalations": ({"max_reescalations": -1}, ["'max_reescalations'", "-1"]),
    "fractional max_reescalations": ({"max_reescalations": 1.5}, ["'max_reescalations'"]),
    "routes not an object": ({"routes": ["bead"]}, ["'routes'"]),
    "route not a list": ({"routes": {"high": "bead"}}, ["'routes.high'"]),
    "port not a number": ({"contacts": {"smtp_port": "twenty-five"}}, ["'contacts.smtp_port'", "twenty-five"]),
    "port out of range": ({"contacts": {"smtp_port": 70000}}, ["'contacts.smtp_port'"]),
    "not an escalation file": ({"type": "town"}, ["'type'", "town"]),
    "not an object": ("[]", ["JSON object"]),
    "header in smtp_from": ({"contacts": {"smtp_from": "gtui@town.example\nBcc: evil@example.com"}}, ["'contacts.smtp_from'"]),
    "webhook not http": ({"contacts": {"slack_webhook": "file:///etc/passwd"}}, ["'contacts.slack_webhook'"]),
}


@pytest.mark.parametrize("case", BROKEN_SETTINGS, ids=list(BROKEN_SETTINGS))
def test_a_broken_settings_file_is_an_error_naming_the_file_and_the_field(town: Path, case: str) -> None:
    content, expected = BROKEN_SETTINGS[case]
    path = write_settings(town, content)
    with pytest.raises(SettingsError) as caught:
        load_escalation_settings(town / "settings", environ={})
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    for fragment in expected:
        assert fragment in message, message


UNDELIVERABLE = {
    "unknown action": ({"routes": {"high": ["bead", "pager"]}}, "routes.high[1]", "error", "'pager' is not an action"),
    "email without address": ({"routes": {"high": ["bead", "email:human"]}, "contacts": {"smtp_host": "127.0.0.1"}},
                              "contacts.human_email", "warning", "email:human"),
    "sms without webhook": ({"routes": {"low": ["sms:human"]}, "contacts": {"human_sms": HUMAN_SMS}},
                            "contacts.sms_webhook", "warning", "sms:human"),
}


@pytest.mark.parametrize("case", UNDELIVERABLE, ids=list(UNDELIVERABLE))
def test_an_action_that_cannot_be_delivered_is_skipped_with_a_problem_not_a_refused_file(town: Path, case: str) -> None:
    content, field, level, words = UNDELIVERABLE[case]
    path = write_settings(town, content)
    settings = load_escalation_settings(town / "settings", environ={})
    (problem,) = [problem for problem in settings.problems if problem.field == field]
    assert (problem.file, problem.level) == (str(path), level) and words in problem.reason
    severity = next(iter(content["routes"]))
    escalation, _ = service(town).raise_("Something", severity, now=T0)
    (skipped,) = [item for item in escalation.deliveries if item.get("skipped")]
    assert skipped["ok"] is False and escalation.bead.data["pending"] == []  # recorded once, never retried
    assert escalation.failing_channels == []


def test_the_file_gt_install_writes_is_accepted_as_it_is(town: Path) -> None:
    """Gas Town's own defaults: every route, empty contacts, a string port elsewhere."""
    (town / "settings").mkdir(parents=True, exist_ok=True)
    (town / "settings" / "escalation.json").write_text(json.dumps({
        "type": "escalation", "version": 1,
        "routes": {"critical": ["bead", "mail:mayor", "email:human", "sms:human"], "high": ["bead", "mail:mayor", "email:human"],
                   "low": ["bead"], "medium": ["bead", "mail:mayor"]},
        "contacts": {}, "stale_threshold": "4h", "max_reescalations": 2}, indent=2), encoding="utf-8")
    settings = load_escalation_settings(town / "settings", environ={})
    assert settings.routes["high"] == ("bead", "mail:mayor", "email:human") and settings.contacts.smtp_port == 587
    assert {(problem.field, problem.level) for problem in settings.problems} == {("contacts.human_email", "warning"),
                                                                                 ("contacts.human_sms", "warning")}
    write_settings(town, {"contacts": {"smtp_port": "2525", "smtp_host": "127.0.0.1"}})
    assert load_escalation_settings(town / "settings", environ={}).contacts.smtp_port == 2525


def test_a_severity_the_file_leaves_out_is_routed_as_gas_towns_config_loader_routes_it(town: Path) -> None:
    """Gas Town's TestEscalationConfigGetRouteForSeverity: a severity without a route falls back to bead and mail:mayor,
    however severe; only a town without the file gets the per-severity defaults."""
    write_settings(town, {"routes": {"low": ["bead"], "medium": ["bead", "mail:mayor"]}})
    routes = load_escalation_settings(town / "settings", environ={}).routes
    assert dict(routes) == {"low": ("bead",), "medium": ("bead", "mail:mayor"), "high": ("bead", "mail:mayor"),
                            "critical": ("bead", "mail:mayor")}
    write_settings(town, {"type": "escalation"})  # no routes at all
    assert set(load_escalation_settings(town / "settings", environ={}).routes.values()) == {("bead", "mail:mayor")}
    (town / "settings" / "escalation.json").unlink()
    assert load_escalation_settings(town / "settings", environ={}).routes["critical"] == ("bead", "mail:mayor", "email:human",
                                                                                          "sms:human")


def test_broken_settings_never_fall_back_to_the_default_route(town: Path) -> None:
    write_settings(town, '{"routes": {"medium": ["bead", "log"]}')  # unclosed: not JSON
    escalations = service(town)
    escalation, created = escalations.raise_("Held", "medium", now=T0)  # the bead is still written
    assert created and "invalid JSON" in escalation.bead.data["history"][0]["detail"]
    assert mail_to(town, "mayor") == []  # the default medium route would have mailed the mayor
    assert not (town / "logs" / "escalations.log").exists()

    engine = Engine(Town.locate(town))
    start_kennel(town)
    try:
        report = engine.patrol_once(now=T0 + MINUTE)
    finally:
        engine.close()
    assert [Path(problem.file).name for problem in report.problems] == ["escalation.json"]
    assert report.undeliverable  # the Deacon's --once exits 1 until it is fixed

    write_settings(town, {"routes": {"medium": ["bead", "log"]}})
    assert escalations.deliver_due(T0 + 2 * MINUTE) == 1  # fixed: delivered on the route as written now
    assert escalation.ref in (town / "logs" / "escalations.log").read_text()
    assert mail_to(town, "mayor") == []


def test_the_smtp_password_comes_from_the_environment(town: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = SmtpServer(user="gtui-bot", password="from-the-env-42").start()
    try:
        write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(server.port, smtp_user="gtui-bot")})
        monkeypatch.delenv("GT_SMTP_PASS", raising=False)
        refused, _ = service(town).raise_("No password", "high", now=T0)
        (failed,) = deliveries(refused, "email:human")
        assert failed["ok"] is False and "SMTP" in failed["error"] and server.messages == []

        monkeypatch.setenv("GT_SMTP_PASS", "from-the-env-42")
        assert load_escalation_settings(town / "settings").contacts.smtp_pass == "from-the-env-42"
        escalation, _ = service(town).raise_("Needs login", "high", now=T0)
        (message,) = server.messages
        assert message.authenticated_as == "gtui-bot" and ("gtui-bot", "from-the-env-42") in server.logins
        assert deliveries(escalation, "email:human")[-1]["ok"] is True
    finally:
        server.stop()


def test_a_password_smtp_cannot_encode_is_a_failed_delivery_not_a_crash(town: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = SmtpServer(user="gtui-bot", password="x").start()
    try:
        write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(server.port, smtp_user="gtui-bot")})
        monkeypatch.setenv("GT_SMTP_PASS", "pässwörd")
        escalation, _ = service(town).raise_("Unicode secret", "high", now=T0)
        (failed,) = deliveries(escalation, "email:human")
        assert failed["ok"] is False and failed["error"]
        assert escalation.failing_channels == ["email:human"]
    finally:
        server.stop()


# -- hostile input -----------------------------------------------------------------------


def test_a_subject_cannot_inject_an_email_header(town: Path, smtp: SmtpServer, webhook: WebhookServer) -> None:
    write_settings(town, {"routes": {"critical": ["bead", "email:human", "sms:human", "mail:mayor"]},
                          "contacts": contacts(smtp.port, human_sms=HUMAN_SMS, sms_webhook=webhook.url("/sms"))})
    body = "first line\n.\nafter a lone dot\nBcc: not-a-header@example.com"
    escalation, _ = service(town).raise_("Disk full\r\nBcc: evil@example.com", "critical", body=body, now=T0)

    (message,) = smtp.messages
    email = message.email
    assert message.rcpt_tos == [HUMAN_EMAIL]
    assert email["Bcc"] is None and "evil@example.com" not in (email["To"] + email["From"])
    subject = email["Subject"]
    assert "\r" not in subject and "\n" not in subject and subject.endswith("Disk full Bcc: evil@example.com")
    headers = message.raw.replace(b"\r\n", b"\n").split(b"\n\n")[0]
    assert not any(line.lower().startswith(b"bcc:") for line in headers.splitlines())
    assert body in message.body  # the body arrives whole, lone dot included
    assert escalation.subject == "Disk full Bcc: evil@example.com"
    assert "\n" not in webhook.posts[0].json["body"]
    assert "\n" not in mail_to(town, "mayor")[0].title


# -- log and Slack -----------------------------------------------------------------------


def test_the_log_action_appends_a_line_and_slack_gets_a_text_post(town: Path, webhook: WebhookServer) -> None:
    write_settings(town, {"routes": {"critical": ["bead", "log", "slack"], "low": ["log"]},
                          "contacts": {"slack_webhook": webhook.url("/slack")}})
    escalations = service(town)
    first, _ = escalations.raise_("Mayor unreachable", "critical", body="tmux session gone", source="deacon", now=T0)
    second, _ = escalations.raise_("Tidy up", "low", source="cli", now=T0 + MINUTE)

    lines = (town / "logs" / "escalations.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2  # Gas Town's line: local RFC 3339 time, [SEVERITY], id: subject
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d \[CRITICAL\] {first.ref}: Mayor unreachable", lines[0])
    assert lines[1].endswith(f" [LOW] {second.ref}: Tidy up")

    (post,) = webhook.posts
    assert post.path == "/slack" and set(post.json) == {"text"}
    assert "Mayor unreachable" in post.json["text"] and "tmux session gone" in post.json["text"]


def test_a_failure_whose_process_died_before_escalating_is_escalated_by_the_next_patrol(town: Path) -> None:
    """The run's close says what it owes, in the same commit: a process killed (or refused by the ledger) after it loses nothing."""
    make_town(town)
    write_settings(town, {"routes": {"high": ["bead"]}, "contacts": {}})
    add_plugin(town, "refinery-check", 'type = "manual"', FAILING, execution='notify_on_failure = true\nseverity = "high"')
    add_plugin(town, "was-notifying", 'type = "manual"', FAILING, execution='notify_on_failure = false')
    book = open_ledger(Town.locate(town).ledger_path)
    dead = []
    for name in ("refinery-check", "was-notifying", "vanished"):
        claimed = book.claim_run(name, "town")
        (closed,) = book.record_turn([Close(claimed.id, "failure", {"reason": "exit 1"}, owed=True)], [])
        dead.append(closed)
    assert all(OWED in run.labels for run in dead)
    closed_at = dead[0].closed_at
    engine = Engine(Town.locate(town))
    start_kennel(town)
    try:
        engine.patrol_once(now=closed_at + 1)  # within the grace the run's own process may still raise it
        assert plugin_escalations(town, "refinery-check") == [] and len(book.owed_follow_ups()) == 3
        engine.patrol_once(now=closed_at + OWED_GRACE + 1)
        (escalation,) = plugin_escalations(town, "refinery-check")
        assert escalation.occurrences == 1 and dead[0].ref in escalation.bead.body
        assert book.owed_follow_ups() == [], "paid once; a plugin that no longer notifies, or is gone, owes nothing"
        assert plugin_escalations(town, "was-notifying") == plugin_escalations(town, "vanished") == []
        engine.patrol_once(now=closed_at + 2 * OWED_GRACE)
        assert plugin_escalations(town, "refinery-check")[0].occurrences == 1
    finally:
        engine.close()


def test_a_failure_escalated_by_its_own_dog_owes_nothing_afterwards(town: Path) -> None:
    make_town(town)
    write_settings(town, {"routes": {"high": ["bead"]}, "contacts": {}})
    add_plugin(town, "refinery-check", 'type = "manual"', FAILING, execution='notify_on_failure = true\nseverity = "high"')
    engine = Engine(Town.locate(town))
    start_kennel(town)
    try:
        run = run_plugin(engine, "refinery-check")
        assert run.result == "failure" and engine.ledger.owed_follow_ups() == []
        engine.patrol_once(now=run.closed_at + OWED_GRACE + 1)
        assert [item.occurrences for item in plugin_escalations(town, "refinery-check")] == [1]
    finally:
        engine.close()
