"""Delivery channels of escalations: mail bead, email, SMS, Slack, log file.

Each channel is a function ``(escalation view, settings, context) -> None``
that raises :class:`DeliveryError` with a one-line reason when it fails; the
escalation module records the outcome and schedules retries.  Network
channels use short timeouts so a dead server costs seconds, not a patrol.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from gtcore.clock import iso
from gtcore.ledger import Ledger

NETWORK_TIMEOUT = 10.0


class DeliveryError(Exception):
    """A delivery that did not happen, and why (one line)."""


@dataclass(frozen=True)
class Message:
    """What every channel sends, already stripped of anything header-breaking."""

    ref: str
    severity: str
    subject: str
    body: str
    source: str
    at: float
    raised_at: float | None = None  # when the escalation was raised; ``at`` is this attempt, later on a retry

    @property
    def headline(self) -> str:
        return f"[{self.severity.upper()}] {self.subject}"


@dataclass(frozen=True)
class Contacts:
    """Where people are reached; secrets may come from the environment."""

    human_email: str = ""
    human_sms: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "gtui@localhost"
    smtp_user: str = ""
    smtp_pass: str = ""
    smtp_starttls: bool = False
    sms_webhook: str = ""
    slack_webhook: str = ""


@dataclass(frozen=True)
class DeliveryContext:
    """What channels need besides the message: the ledger and the town's files."""

    ledger: Ledger
    log_path: Path
    contacts: Contacts


def one_line(text: str) -> str:
    """Collapse any line breaks: a subject can never inject a header or a second line."""
    return " ".join(text.split())


def deliver_mail(message: Message, target: str, ctx: DeliveryContext) -> None:
    ctx.ledger.create(
        "mail",
        title=message.headline,
        body=f"{message.body}\n\n(escalation {message.ref}, source {message.source})".strip(),
        labels=[f"to:{target}", "from:gtui", f"escalation:{message.ref}"],
        data={"to": target, "from": "gtui", "escalation": message.ref},
        now=message.at,
    )


def deliver_email(message: Message, ctx: DeliveryContext) -> None:
    contacts = ctx.contacts
    if not contacts.human_email or not contacts.smtp_host:
        raise DeliveryError("email needs contacts.human_email and contacts.smtp_host in settings/escalation.json")
    email = EmailMessage()
    email["From"] = contacts.smtp_from
    email["To"] = contacts.human_email
    email["Subject"] = f"[gtui {message.severity}] {message.subject}"
    raised = iso(message.at if message.raised_at is None else message.raised_at)
    email.set_content(f"{message.body}\n\nescalation {message.ref} · source {message.source} · raised {raised}\n")
    try:
        with smtplib.SMTP(contacts.smtp_host, contacts.smtp_port, timeout=NETWORK_TIMEOUT) as smtp:
            if contacts.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if contacts.smtp_user:
                smtp.login(contacts.smtp_user, contacts.smtp_pass)
            smtp.send_message(email)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP {contacts.smtp_host}:{contacts.smtp_port}: {_reason(exc)}") from None
    except UnicodeError:  # smtplib sends AUTH credentials as ASCII only
        raise DeliveryError(f"SMTP {contacts.smtp_host}:{contacts.smtp_port}: smtp_user/smtp_pass must be ASCII for SMTP AUTH") from None


def _post_json(url: str, payload: dict[str, str], what: str) -> None:
    if not url:
        raise DeliveryError(f"{what} has no webhook URL in settings/escalation.json contacts")
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=NETWORK_TIMEOUT) as response:
            response.read(4096)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"{what} webhook answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"{what} webhook: {_reason(exc)}") from None


def deliver_sms(message: Message, ctx: DeliveryContext) -> None:
    if not ctx.contacts.human_sms:
        raise DeliveryError("SMS needs contacts.human_sms in settings/escalation.json")
    _post_json(ctx.contacts.sms_webhook, {"to": ctx.contacts.human_sms, "body": f"{message.headline} ({message.ref})"}, "SMS")


def deliver_slack(message: Message, ctx: DeliveryContext) -> None:
    text = f"{message.headline} ({message.ref}, {message.source})\n{message.body}"
    _post_json(ctx.contacts.slack_webhook, {"text": text[:3000]}, "Slack")


def deliver_log(message: Message, ctx: DeliveryContext) -> None:
    try:
        ctx.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(ctx.log_path, "a", encoding="utf-8") as handle:
            handle.write(f"{iso(message.at)} {message.severity} {message.ref} {message.source} {message.subject}\n")
    except OSError as exc:
        raise DeliveryError(f"cannot append to {ctx.log_path}: {exc.strerror or exc}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and exc.reason:
        return one_line(str(exc.reason))
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"timed out after {NETWORK_TIMEOUT:g}s"
    return one_line(str(exc)) or type(exc).__name__


def channel_for(action: str) -> Callable[[Message, DeliveryContext], None] | None:
    """The function behind a route action, or None for ``bead`` (the record itself)."""
    if action.startswith("mail:"):
        target = action.split(":", 1)[1]
        return lambda message, ctx: deliver_mail(message, target, ctx)
    return {
        "bead": None,
        "email:human": deliver_email,
        "sms:human": deliver_sms,
        "slack": deliver_slack,
        "log": deliver_log,
    }[action]


ACTIONS = ("bead", "email:human", "sms:human", "slack", "log")


def valid_action(action: str) -> bool:
    return action in ACTIONS or (action.startswith("mail:") and len(action) > len("mail:"))
