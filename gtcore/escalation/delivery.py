"""Delivery channels of escalations: mail bead, email, SMS, Slack, log file.

Each channel is a function ``(escalation view, settings, context) -> None``
that raises :class:`DeliveryError` with a one-line reason when it fails; the
escalation module records the outcome and schedules retries.  Network
channels run under one :class:`Deadline` each, so a dead or trickling server
costs at most that, whatever it does.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from gtcore.core.clock import iso
from gtcore.core.durations import format_duration
from gtcore.core.safe_text import one_line
from gtcore.escalation.settings import Contacts
from gtcore.storage.contract import Ledger

DELIVERY_TIMEOUT = 10.0  # seconds for a whole delivery, connect to last byte


class DeliveryError(Exception):
    """A delivery that did not happen, and why (one line); ``retry_after``: when the other end asked to be tried again
    (seconds from now, a webhook's ``Retry-After``), else the escalation's own backoff decides."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


RETRY_AFTER_CAP = 3600.0  # a Retry-After longer than an hour is taken as an hour: an escalation must not sleep for days


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
class DeliveryContext:
    """What channels need besides the message: the ledger and the town's files."""

    ledger: Ledger
    log_path: Path
    contacts: Contacts
    timeout: float = DELIVERY_TIMEOUT

    def deadline(self) -> Deadline:
        """A fresh deadline for one delivery."""
        return Deadline(self.timeout)


def deliver_mail(message: Message, target: str, ctx: DeliveryContext) -> None:
    ctx.ledger.create(
        "mail",
        title=message.headline,
        body=f"{message.body}\n\n(escalation {message.ref}, source {message.source})".strip(),
        labels=[f"to:{target}", "from:gtui", f"escalation:{message.ref}"],
        data={"to": target, "from": "gtui", "escalation": message.ref},
        now=message.at,
    )


class Deadline:
    """One deadline for a whole delivery, from connect to the last byte.

    A socket timeout bounds each read; a server that trickles a byte a
    second never trips it.  The deadline shuts every socket it watches when
    it expires, which ends any read or write blocked on it at once.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()  # from creation: the clock runs from the first step of the delivery, not from its first socket

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        return max(0.05, self._ends - time.monotonic())

    def watch(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def reason(self, exc: BaseException) -> str:
        """Why the delivery failed: the deadline (also when a socket's own timeout beat the timer to it), or the error."""
        if self.expired or time.monotonic() >= self._ends - 0.05:
            return f"no answer within {self.seconds:g}s (the whole delivery)"
        return _reason(exc, self.seconds)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def deliver_email(message: Message, ctx: DeliveryContext) -> None:
    import smtplib  # only when sending: most commands never do

    contacts = ctx.contacts
    if not contacts.human_email or not contacts.smtp_host:
        raise DeliveryError("email needs contacts.human_email and contacts.smtp_host in settings/escalation.json")
    from email.message import EmailMessage

    email = EmailMessage()
    email["From"] = contacts.smtp_from
    email["To"] = contacts.human_email
    email["Subject"] = f"[gtui {message.severity}] {message.subject}"
    raised = iso(message.at if message.raised_at is None else message.raised_at)
    email.set_content(f"{message.body}\n\nescalation {message.ref} · source {message.source} · raised {raised}\n")
    deadline = ctx.deadline()

    class _SMTP(smtplib.SMTP):
        def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
            return deadline.watch(socket.create_connection((host, port), deadline.remaining()))

    where = f"SMTP {contacts.smtp_host}:{contacts.smtp_port}"
    try:
        with deadline, _SMTP(contacts.smtp_host, contacts.smtp_port, timeout=deadline.remaining()) as smtp:
            if contacts.smtp_starttls:
                import ssl

                smtp.starttls(context=ssl.create_default_context())
                if smtp.sock is not None:  # the TLS socket starttls put in place (never None once it returned)
                    deadline.watch(smtp.sock)
            if contacts.smtp_user:
                smtp.login(contacts.smtp_user, contacts.smtp_pass)
            smtp.send_message(email)
    except smtplib.SMTPResponseException as exc:  # the server answered, and said no: its code and words
        raise DeliveryError(f"{where}: {_smtp_refusal(exc.smtp_code, exc.smtp_error)}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        refusals = "; ".join(f"refused {address}: {_smtp_refusal(code, text)}" for address, (code, text) in exc.recipients.items())
        raise DeliveryError(f"{where}: {refusals}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{where}: {deadline.reason(exc)}") from None
    except UnicodeError:  # smtplib sends AUTH credentials as ASCII only
        raise DeliveryError(f"{where}: smtp_user/smtp_pass must be ASCII for SMTP AUTH") from None


def _post_json(url: str, payload: dict[str, str], what: str, deadline: Deadline) -> None:
    import http.client  # only when sending

    if not url:
        raise DeliveryError(f"{what} has no webhook URL in settings/escalation.json contacts")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"{what} webhook {url!r} is not an http:// or https:// URL")
    body = json.dumps(payload).encode()
    try:
        with deadline:
            if parts.scheme == "https":
                import ssl

                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    parts.hostname, parts.port, timeout=deadline.remaining(), context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=deadline.remaining())
            try:
                conn.connect()
                deadline.watch(conn.sock)
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                conn.request("POST", target, body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read(4096)
            finally:
                conn.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise DeliveryError(f"{what} webhook: {deadline.reason(exc)}") from None
    if not 200 <= response.status < 300:
        wait = retry_after(response.getheader("Retry-After"), time.time()) if response.status in (429, 503) else None
        later = f"; it asks to be tried again in {format_duration(wait)}" if wait is not None else ""
        raise DeliveryError(f"{what} webhook answered HTTP {response.status}{later}", retry_after=wait)


def retry_after(header: str | None, now: float) -> float | None:
    """A ``Retry-After`` header as seconds from ``now`` (delay-seconds, or an HTTP date), at most an hour; None when absent
    or not one of the two forms."""
    if header is None:
        return None
    text = header.strip()
    if text.isascii() and text.isdigit():
        return min(float(text), RETRY_AFTER_CAP)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a year no datetime holds (0 Jan 3000000000)
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now), RETRY_AFTER_CAP)


def _smtp_refusal(code: int, text: bytes | str) -> str:
    """An SMTP server's refusal in words: its code and what it said (bytes from the wire decoded, never shown as bytes)."""
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {one_line(said)}".strip()


def deliver_sms(message: Message, ctx: DeliveryContext) -> None:
    if not ctx.contacts.human_sms:
        raise DeliveryError("SMS needs contacts.human_sms in settings/escalation.json")
    _post_json(ctx.contacts.sms_webhook, {"to": ctx.contacts.human_sms, "body": f"{message.headline} ({message.ref})"}, "SMS",
               ctx.deadline())


def deliver_slack(message: Message, ctx: DeliveryContext) -> None:
    text = f"{message.headline} ({message.ref}, {message.source})\n{message.body}"
    _post_json(ctx.contacts.slack_webhook, {"text": text[:3000]}, "Slack", ctx.deadline())


def deliver_log(message: Message, ctx: DeliveryContext) -> None:
    try:
        ctx.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(ctx.log_path, "a", encoding="utf-8") as handle:
            handle.write(f"{local_iso(message.at)} [{message.severity.upper()}] {message.ref}: {message.subject}\n")  # Gas Town's line
    except OSError as exc:
        raise DeliveryError(f"cannot append to {ctx.log_path}: {exc.strerror or exc}") from None


def local_iso(timestamp: float) -> str:
    """RFC 3339 in local time with its offset, as Gas Town stamps its escalation log."""
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def _reason(exc: BaseException, seconds: float) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"timed out after {seconds:g}s"
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
