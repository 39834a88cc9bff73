"""Real faults for the fault tests: small and read-only mounts, a full disk, a held write lock,
servers that trickle or never answer, and a scan of every process for a run's token.

Nothing here is simulated: a full disk is a tmpfs filled with ``dd``, a read-only
directory is a read-only bind mount, a stuck server is a real socket on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*argv: str) -> None:
    """Run ``mount ARGV``; skip the test (not fail it) when this machine cannot mount."""
    done = subprocess.run(["mount", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount ({' '.join(argv)}): {done.stderr.strip() or done.returncode}")


def _umount(target: Path) -> None:
    """Unmount ``target``, lazily if it is still busy, so a failing test never leaves a mount behind."""
    done = subprocess.run(["umount", str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(target: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``target`` (created if needed), unmounted afterwards whatever happens."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(target)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield target
    finally:
        _umount(target)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """``directory`` bind-mounted read-only onto itself: writes fail with EROFS even for root, as on a read-only medium."""
    _mount("--bind", str(directory), str(directory))
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.strip() or done.returncode}")
        yield directory
    finally:
        _umount(directory)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last block (``dd`` until ENOSPC); returns the filler to delete."""
    filler = directory / "filler"
    done = subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True, text=True)
    assert done.returncode != 0 and "No space left" in done.stderr, done.stderr
    info = os.statvfs(directory)
    assert info.f_bavail == 0, f"{directory} still has {info.f_bavail} blocks free"
    return filler




def token_holders(token: str) -> list[int]:
    """Every live process on the machine (zombies excluded) whose environment carries ``GTUI_RUN_TOKEN=token``.

    Reads all of /proc, not just gtui's children: a run's process that escaped to
    init must count as a survivor too.
    """
    assert token, "a run without a token cannot be checked"
    marker = f"GTUI_RUN_TOKEN={token}\0".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if marker in environ and stat[stat.rfind(")") + 2:].split()[0] != "Z":
            found.append(int(name))
    return found


def kill_token_holders(token: str) -> None:
    """Clean-up: SIGKILL whatever still carries a run's token (the test has already said whether that is a failure)."""
    if not token:
        return
    for pid in token_holders(token):
        with contextlib.suppress(OSError):
            os.kill(pid, 9)


class _StuckServer:
    """A TCP server on 127.0.0.1 that handles each connection on a thread of its own until :meth:`stop`."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.stopped = threading.Event()
        self.connections = 0
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(client)
                self.connections += 1
            threading.Thread(target=self._serve_quietly, args=(client,), daemon=True).start()

    def _serve_quietly(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.serve(client)

    def serve(self, client: socket.socket) -> None:
        raise NotImplementedError

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.close()

    def __enter__(self) -> _StuckServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TricklingSmtp(_StuckServer):
    """An SMTP server whose ``220`` greeting never ends: one byte every half second, forever.

    Each byte resets a per-read socket timeout; only a deadline on the whole delivery stops it.
    """

    def serve(self, client: socket.socket) -> None:
        client.sendall(b"2")
        for byte in b"20 trickle.example ESMTP " + b"." * 100_000:
            if self.stopped.wait(0.5):
                return
            client.sendall(bytes([byte]))


class HangingWebhook(_StuckServer):
    """An HTTP server that accepts, reads the request, and never answers."""

    def serve(self, client: socket.socket) -> None:
        client.recv(65536)
        self.stopped.wait()
