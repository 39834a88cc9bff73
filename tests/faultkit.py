"""Real faults for the fault tests: small and read-only mounts, a full disk, a disk that turns read-only
under its writers, clocks that step, a database server killed and started again, servers that trickle
or never answer, and a scan of every process for a run's token.

Nothing here is simulated: a full disk is a tmpfs filled with ``dd``, a read-only
directory is a read-only bind mount, a disk failing read-only is an ext4 file system on a
loop device whose kernel driver is told it met an error, a clock step is libfaketime
(LD_PRELOAD) reading its offset from a file, a killed server is PostgreSQL's postmaster
sent SIGKILL, a stuck server is a real socket on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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




class FailingDisk:
    """An ext4 file system on a loop device, mounted ``errors=remount-ro``: :meth:`fail` makes its driver meet an error,
    and the kernel turns it read-only under every writer at once (open files too), as a dying disk does.

    A read-only bind remount cannot do that: the kernel refuses it while a file is open for writing.
    Writable again only once unmounted and checked (:meth:`repair`), as in life.
    """

    def __init__(self, image: Path, target: Path) -> None:
        self.image, self.target = image, target

    def mount(self) -> None:
        done = subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.target)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount an ext4 image on a loop device: {done.stderr.strip() or done.returncode}")

    def fail(self) -> None:
        device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(self.target)], capture_output=True, text=True).stdout.strip()
        Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("gtui test: the disk failed\n")
        with pytest.raises(OSError, match="Read-only file system"):  # the mount may still say rw: the driver refuses
            (self.target / "probe").touch()

    def repair(self) -> None:
        """Unmount (every writer must have let go), check the file system, mount it again, writable."""
        _umount(self.target)
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True, text=True)
        self.mount()


@contextlib.contextmanager
def failing_disk(target: Path, size: str = "16M") -> Iterator[FailingDisk]:
    """A :class:`FailingDisk` of ``size`` mounted on ``target`` (created if needed), unmounted afterwards whatever happens."""
    if shutil.which("mkfs.ext4") is None or not Path("/dev/loop-control").exists():
        pytest.skip("no mkfs.ext4 or no loop devices here")
    target.mkdir(parents=True, exist_ok=True)
    image = target.parent / f".{target.name}.ext4"
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    disk = FailingDisk(image, target)
    disk.mount()
    try:
        yield disk
    finally:
        _umount(target)
        image.unlink(missing_ok=True)


class Clock:
    """The wall clock of the processes started with :meth:`env`: this machine's, offset by what :meth:`step` last wrote.

    libfaketime (the pip wheel's LD_PRELOAD library) reads the offset from a file at every call,
    so a running process's clock steps when the file changes, as under an NTP step.  The
    monotonic clock is left alone: an NTP step never moves it either.
    """

    def __init__(self, path: Path) -> None:
        import libfaketime

        self.path = path
        self.library = Path(libfaketime.__file__).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
        self.step("+0")

    def step(self, offset: str) -> None:
        """Set the offset (libfaketime's words: ``+1d``, ``-2h``, ``+0``), written whole so no reader sees half of it."""
        temp = self.path.with_suffix(".tmp")
        temp.write_text(offset + "\n")
        os.replace(temp, self.path)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "LD_PRELOAD": str(self.library), "FAKETIME_TIMESTAMP_FILE": str(self.path), "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1", "DONT_FAKE_MONOTONIC": "1"}


def sweep_faketime() -> None:
    """Remove the shared memory and semaphore libfaketime made for each process it ran in
    (``/dev/shm/faketime_shm_<pid>``, ``sem.faketime_sem_<pid>``) once that process is gone: it unlinks them when a
    process exits, never when one is killed, and the tests kill kennels."""
    shm = Path("/dev/shm")
    for path in [*shm.glob("faketime_shm_*"), *shm.glob("sem.faketime_sem_*")]:
        pid = path.name.rpartition("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            path.unlink(missing_ok=True)


class OwnPostgres:
    """A PostgreSQL server (the pgserver wheel) for one test alone, which the test may kill with SIGKILL and start again."""

    def __init__(self, data: Path) -> None:
        import pgserver

        self.server: Any = pgserver.get_server(data, cleanup_mode="stop")
        self.uri: str = self.server.get_uri()

    def kill(self) -> None:
        """SIGKILL the postmaster, as the OOM killer would; returns once it and every backend are gone."""
        import psutil

        pid = self.server.get_pid()
        backends = psutil.Process(pid).children()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while any(psutil.pid_exists(one) for one in [pid, *(child.pid for child in backends)]):
            assert time.monotonic() < deadline, "the killed postmaster is still there"
            time.sleep(0.02)

    def start(self) -> None:
        """Start it again on the same data directory and socket (crash recovery replays its WAL)."""
        self.server.ensure_postgres_running()
        assert self.server.get_uri() == self.uri

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.server.cleanup()


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
