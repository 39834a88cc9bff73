"""Real servers on 127.0.0.1 for delivery tests: an SMTP server (aiosmtpd) and a JSON webhook (http.server).

Both collect what they receive so tests can assert on it; nothing is mocked. Each can be
started on a given port, so a test can point gtui at a port with nothing listening, then
bring the server up on that same port.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Received:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    authenticated_as: str | None

    @property
    def email(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=default_policy)  # type: ignore[return-value]

    @property
    def body(self) -> str:
        return self.email.get_content().replace("\r\n", "\n")


class _Collector:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self, sink: list[Received]) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        auth = session.auth_data if session.authenticated else None
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.sink.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content), login))
        return "250 Message accepted"


class _Refuser(_Collector):
    """aiosmtpd handler that answers one step (``RCPT`` or ``DATA``) with ``reply``, a refusal such as
    ``550 5.1.1 no such user here``; it keeps nothing it refused."""

    def __init__(self, sink: list[Received], step: str, reply: str) -> None:
        super().__init__(sink)
        self.step, self.reply = step, reply

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if self.step == "RCPT":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.reply if self.step == "DATA" else await super().handle_DATA(server, session, envelope)


@dataclass
class SmtpServer:
    """An aiosmtpd ``Controller`` on 127.0.0.1; ``password`` set means AUTH is required; ``refuse`` (a step, ``RCPT`` or
    ``DATA``, and the reply) means that step of every message is refused with that reply."""

    port: int = field(default_factory=free_port)
    user: str | None = None
    password: str | None = None
    refuse: tuple[str, str] | None = None
    messages: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    _controller: Controller | None = None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        ok = (login, password) == (self.user, self.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> SmtpServer:
        options: dict[str, Any] = {}
        if self.password is not None:
            options = {"auth_require_tls": False, "auth_required": True, "authenticator": self._authenticate}
        handler = _Collector(self.messages) if self.refuse is None else _Refuser(self.messages, *self.refuse)
        self._controller = Controller(handler, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class Post:
    """One POST the webhook server received."""

    path: str
    content_type: str
    json: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    posts: list[Post]
    status: int
    headers: dict[str, str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"null")
        self.server.posts.append(Post(self.path, self.headers.get("Content-Type", ""), payload))
        self.send_response(self.server.status)
        for name, value in self.server.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


@dataclass
class WebhookServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 collecting JSON POST bodies; answers ``status`` with ``headers``."""

    port: int = field(default_factory=free_port)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    posts: list[Post] = field(default_factory=list)
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookServer:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.posts, server.status, server.headers = self.posts, self.status, self.headers
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def posts_to(self, path: str) -> list[Any]:
        return [post.json for post in self.posts if post.path == path]

