"""The ``gtui escalate`` and ``gtui mail`` commands, run as real processes against real servers on 127.0.0.1.

The CLI reads the wall clock, so stale escalations are prepared in-process with a ``now=`` in the
past; every check of the output goes through the command itself.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from enginekit import Result, gtui_argv, gtui_env
from servers import SmtpServer, WebhookServer, free_port

from gtcore.escalation.escalations import Escalations
from gtcore.storage import open_ledger
from gtcore.town.layout import Town

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

HOUR = 3600.0
HUMAN_EMAIL, HUMAN_SMS, SENDER = "overseer@town.example", "+15550100", "gtui@town.example"
ENTRY_KEYS = {"id", "subject", "body", "severity", "original_severity", "source", "status", "count", "created_at",
              "last_seen_at", "reescalations", "stale", "deliveries"}
DELIVERY_KEYS = {"channel", "ok", "error", "at"}


def cli(town: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run ``gtui --town TOWN ARGS`` as a process; never a traceback."""
    done = subprocess.run(gtui_argv(town, *args), input=stdin, capture_output=True, text=True,
                          env={**gtui_env(), **(env or {})}, timeout=60)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def ok_json(town: Path, *args: str, **options: Any) -> Any:
    result = cli(town, *args, "--json", **options)
    assert result.code == 0, result.err
    return result.json()


def one_error_line(result: Result, *fragments: str) -> str:
    """Exit 2 with exactly one line on stderr containing every fragment."""
    assert result.code == 2, (result.out, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write_settings(town: Path, settings: dict[str, Any] | str) -> Path:
    path = town / "settings" / "escalation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings if isinstance(settings, str) else json.dumps(settings), encoding="utf-8")
    return path


def contacts(smtp_port: int, **extra: Any) -> dict[str, Any]:
    return {"human_email": HUMAN_EMAIL, "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_from": SENDER, **extra}


def listed(town: Path, *args: str) -> list[dict[str, Any]]:
    payload = ok_json(town, "escalate", "list", *args)
    assert set(payload) == {"escalations"}
    return payload["escalations"]


def test_escalate_raises_delivers_and_lists_with_the_documented_keys(town: Path, smtp: SmtpServer, webhook: WebhookServer) -> None:
    write_settings(town, {"routes": {"high": ["bead", "email:human", "sms:human"]},
                          "contacts": contacts(smtp.port, human_sms=HUMAN_SMS, sms_webhook=webhook.url("/sms"))})
    before = time.time()
    raised = ok_json(town, "escalate", "Refinery merge queue stuck", "--severity", "high", "--reason", "No merge for 2h.",
                     "--source", "deacon")
    assert raised["id"] == "esc-1" and raised["created"] is True

    (message,) = smtp.messages
    assert message.email["From"] == SENDER and message.email["To"] == HUMAN_EMAIL
    assert "high" in message.email["Subject"].lower() and "Refinery merge queue stuck" in message.email["Subject"]
    assert "No merge for 2h." in message.body
    (sms,) = webhook.posts
    assert sms.json["to"] == HUMAN_SMS and set(sms.json) == {"to", "body"} and "Refinery merge queue stuck" in sms.json["body"]

    (entry,) = listed(town)
    assert set(entry) >= ENTRY_KEYS
    assert {key: entry[key] for key in ("id", "subject", "body", "severity", "original_severity", "source", "status", "count",
                                        "reescalations", "stale")} == {
        "id": "esc-1", "subject": "Refinery merge queue stuck", "body": "No merge for 2h.", "severity": "high",
        "original_severity": "high", "source": "deacon", "status": "open", "count": 1, "reescalations": 0, "stale": False}
    assert entry["created_at"] == entry["last_seen_at"] and entry["created_at"].endswith("Z")
    assert time.gmtime(before - 1) <= time.strptime(entry["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert all(set(item) >= DELIVERY_KEYS for item in entry["deliveries"])
    assert sorted((item["channel"], item["ok"], item["error"]) for item in entry["deliveries"]) == [
        ("bead", True, None), ("email:human", True, None), ("sms:human", True, None)]


def test_escalate_reads_the_body_from_stdin_and_counts_duplicates(town: Path) -> None:
    write_settings(town, {"routes": {"low": ["bead"]}})
    first = ok_json(town, "escalate", "--severity", "low", "Log rotation late", "--stdin", stdin="line one\nline two\n")
    again = ok_json(town, "escalate", "Log rotation late", "--severity", "low", "-r", "ignored: counted")
    assert {key: again[key] for key in ("id", "created", "count", "severity", "source", "status")} == {
        "id": first["id"], "created": False, "count": 2, "severity": "low", "source": "cli", "status": "ok"}
    other = ok_json(town, "escalate", "Log rotation late", "--severity", "low", "--source", "witness")
    assert other["id"] != first["id"] and other["created"] is True

    shown = ok_json(town, "escalate", "show", first["id"])
    assert shown["body"] == "line one\nline two" and shown["count"] == 2  # the trailing newline goes, as in Gas Town
    assert [item["event"] for item in shown["history"]] == ["raised", "seen again"]
    human = cli(town, "escalate", "Log rotation late", "--severity", "low")
    assert human.code == 0 and human.out.splitlines() == [f"ℹ️ Escalation seen again (count 3): {first['id']}", "  Severity: low",
                                                         "  Routed to: "]  # gtui's rule, in Gas Town's lines


def test_ack_close_show_and_the_list_filters(town: Path) -> None:
    write_settings(town, {"routes": {"low": ["bead"], "critical": ["bead", "log"]}})
    low = ok_json(town, "escalate", "Minor drift", "--severity", "low")["id"]
    critical = ok_json(town, "escalate", "Mayor down", "--severity", "critical", "--reason", "no tmux session")["id"]

    assert ok_json(town, "escalate", "ack", low) == {"id": low, "status": "acked"}
    assert ok_json(town, "escalate", "ack", low) == {"id": low, "status": "acked"}  # twice is harmless
    assert [item["id"] for item in listed(town, "--severity", "critical")] == [critical]
    assert {item["id"]: item["status"] for item in listed(town)} == {low: "acked", critical: "open"}

    assert ok_json(town, "escalate", "close", critical, "--reason", "restarted the mayor") == {"id": critical, "status": "closed"}
    assert [item["id"] for item in listed(town)] == [low]
    everything = {item["id"]: item for item in listed(town, "--all")}
    assert everything[critical]["status"] == "closed" and everything[critical]["close_reason"] == "restarted the mayor"

    shown = ok_json(town, "escalate", "show", critical)
    assert set(shown) >= ENTRY_KEYS
    assert [item["event"] for item in shown["history"]] == ["raised", "closed"]
    assert shown["history"][1]["detail"] == "restarted the mayor"
    assert [(item["channel"], item["ok"]) for item in shown["deliveries"]] == [("bead", True), ("log", True)]
    assert all(set(item) >= DELIVERY_KEYS for item in shown["deliveries"])

    one_error_line(cli(town, "escalate", "close", critical, "--reason", "again"), "already closed")
    one_error_line(cli(town, "escalate", "ack", critical), "closed")
    one_error_line(cli(town, "escalate", "close", low, "--reason", "   "), "reason")
    one_error_line(cli(town, "escalate", "close", low), "--reason")

    for args in (("list",), ("list", "--all"), ("show", low)):
        human = cli(town, "escalate", *args)
        assert human.code == 0 and human.err == "" and "Minor drift" in human.out


@pytest.mark.parametrize("args", [("show", "esc-99"), ("ack", "99"), ("close", "esc-99", "--reason", "x"), ("show", "nonsense")])
def test_an_unknown_escalation_id_is_one_line_and_exit_2(town: Path, args: tuple[str, ...]) -> None:
    ok_json(town, "escalate", "Exists", "--severity", "low")
    one_error_line(cli(town, "escalate", *args), args[1])
    with_json = cli(town, "escalate", *args, "--json")
    assert with_json.code == 2 and set(with_json.json()) == {"error"}


def test_a_broken_settings_file_stops_the_listing_with_one_line_naming_it(town: Path) -> None:
    path = write_settings(town, {"routes": {"high": ["bead"]}, "contacts": {"smtp_port": "many"}})
    line = one_error_line(cli(town, "escalate", "list"), str(path), "contacts.smtp_port", "many")
    assert line.startswith("gtui: error:")
    one_error_line(cli(town, "escalate", "list", "--json"), str(path))

    write_settings(town, '{"routes": {"high": ["bead"],}}')
    one_error_line(cli(town, "escalate", "list"), str(path), "line 1, column")
    write_settings(town, {"max_reescalations": -1})
    one_error_line(cli(town, "escalate", "stale"), str(path), "max_reescalations")


def test_raising_with_broken_settings_records_it_and_says_delivery_waits(town: Path) -> None:
    path = write_settings(town, '{"routes": ')
    result = cli(town, "escalate", "disk full", "--severity", "high")
    assert result.code == 1  # recorded, but no person has it yet
    (line,) = result.err.splitlines()
    assert "is recorded, but its delivery waits until this is fixed" in line and str(path) in line
    ref = result.out.splitlines()[0].rsplit(" ", 1)[1]  # Gas Town's "⚠️ Escalation created: esc-1"
    assert line.startswith(f"gtui: error: {ref} ")
    (bead,) = open_ledger(town / ".gtui" / "ledger.db").beads("escalation")
    assert (bead.ref, bead.title, bead.data["pending"][0]["channel"]) == (ref, "disk full", "@route")


def test_stale_dry_run_changes_nothing_and_stale_moves_onto_the_mail_route(town: Path) -> None:
    write_settings(town, {"stale_threshold": "1h", "max_reescalations": 2,
                          "routes": {"low": ["bead"], "medium": ["bead", "mail:mayor"]}})
    located = Town.locate(town)
    escalations = Escalations(located, open_ledger(located.ledger_path))
    old, _ = escalations.raise_("Polecat idle for hours", "low", body="Toast has no work.", source="witness",
                                now=time.time() - 2 * HOUR)
    fresh, _ = escalations.raise_("Just raised", "low", now=time.time())

    assert [item["id"] for item in listed(town, "--stale")] == [old.ref]
    assert {item["id"]: item["stale"] for item in listed(town)} == {old.ref: True, fresh.ref: False}

    dry = ok_json(town, "escalate", "stale", "--dry-run")
    assert dry == {"dry_run": True, "reescalated": [{"id": old.ref, "from": "low", "to": "medium"}]}
    assert {item["id"]: item["severity"] for item in listed(town)} == {old.ref: "low", fresh.ref: "low"}
    assert ok_json(town, "mail", "list", "--to", "mayor") == {"mail": []}
    dry_human = cli(town, "escalate", "stale", "--dry-run")
    assert dry_human.code == 0 and "would go low -> medium" in dry_human.out

    moved = ok_json(town, "escalate", "stale")
    assert moved == {"dry_run": False, "reescalated": [{"id": old.ref, "from": "low", "to": "medium"}]}
    entry = {item["id"]: item for item in listed(town)}[old.ref]
    assert (entry["severity"], entry["original_severity"], entry["reescalations"], entry["stale"]) == ("medium", "low", 1, False)
    assert listed(town, "--stale") == []

    (mail,) = ok_json(town, "mail", "list", "--to", "mayor")["mail"]
    assert mail["to"] == "mayor" and "Polecat idle for hours" in mail["subject"] and "Toast has no work." in mail["body"]
    assert ok_json(town, "mail", "list", "--to", "deacon") == {"mail": []}
    assert [item["id"] for item in ok_json(town, "mail", "list")["mail"]] == [mail["id"]]
    assert ok_json(town, "escalate", "stale") == {"dry_run": False, "reescalated": []}


def test_smtp_down_the_cli_still_raises_and_shows_the_failing_channel(town: Path) -> None:
    port = free_port()
    write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(port)})
    result = cli(town, "escalate", "Witness lost contact", "--severity", "high", "--json")
    raised = result.json()
    assert (result.code, raised["status"]) == (1, "partial_failure")  # recorded; the email did not go
    (line,) = result.err.splitlines()
    assert line.startswith(f"gtui: error: {raised['id']} is recorded, but email:human failed") and f"127.0.0.1:{port}" in line
    (entry,) = listed(town)
    assert entry["id"] == raised["id"] and entry["pending"] == ["email:human"]
    (failed,) = [item for item in entry["deliveries"] if item["channel"] == "email:human"]
    assert failed["ok"] is False and f"127.0.0.1:{port}" in failed["error"]


def test_the_cli_logs_in_with_the_password_from_its_environment(town: Path) -> None:
    server = SmtpServer(user="gtui-bot", password="env-only-secret").start()
    try:
        write_settings(town, {"routes": {"high": ["bead", "email:human"]}, "contacts": contacts(server.port, smtp_user="gtui-bot")})
        ok_json(town, "escalate", "Needs login", "--severity", "high", env={"GT_SMTP_PASS": "env-only-secret"})
        (message,) = server.messages
        assert message.authenticated_as == "gtui-bot" and server.logins == [("gtui-bot", "env-only-secret")]
    finally:
        server.stop()


def test_the_log_action_writes_the_town_escalations_log(town: Path) -> None:
    write_settings(town, {"routes": {"medium": ["log"]}})
    raised = ok_json(town, "escalate", "Convoy stalled", "--severity", "medium", "--source", "deacon")
    (line,) = (town / "logs" / "escalations.log").read_text(encoding="utf-8").splitlines()
    assert line.endswith(f" [MEDIUM] {raised['id']}: Convoy stalled")
