"""Gas City cities on disk for the tests, written from gc's sources (never copied from Gas City's own files).

A city is a directory with ``city.toml`` (and here ``settings/gtui.toml``
for gtui's own settings); orders are ``orders/<name>.toml`` files with one
``[order]`` table; packs are directories with ``pack.toml`` and
``orders/``; rigs are ``[[rigs]]`` entries whose paths ``.gc/site.toml``
binds.  :func:`fake_gc` puts ``tests/fake_gc.py`` first on PATH as ``gc``;
:class:`Controller` holds a city as gc's controller does (its lock and its
socket).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def make_city(root: Path, city_toml: str = "", settings: str = 'dogs = 2\nkill_grace = "1s"\n') -> Path:
    """A city at ``root``: ``city.toml`` holding ``city_toml`` (a ``[workspace]`` with its name first), gtui's settings."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "city.toml").write_text(f'[workspace]\nname = "{root.name}"\n{city_toml}', encoding="utf-8")
    (root / "settings").mkdir(exist_ok=True)
    (root / "settings" / "gtui.toml").write_text(settings, encoding="utf-8")
    return root


def order(directory: Path, name: str, body: str, *, suffix: str = ".toml") -> Path:
    """``<directory>/<name><suffix>`` holding ``[order]`` and ``body``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}{suffix}"
    path.write_text(f"[order]\n{body}\n", encoding="utf-8")
    return path


def pack(directory: Path, name: str, imports: dict[str, str] | None = None) -> Path:
    """A pack: ``pack.toml`` with its ``[pack]`` table and ``[imports.*]`` (binding: source)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = f'[pack]\nname = "{name}"\nschema = 2\n'
    for binding, source in (imports or {}).items():
        text += f'\n[imports.{binding}]\nsource = "{source}"\n'
    (directory / "pack.toml").write_text(text, encoding="utf-8")
    return directory


def bind_rigs(city: Path, rigs: dict[str, Path]) -> None:
    """``.gc/site.toml``: each rig's path, as ``gc rig add`` binds it."""
    (city / ".gc").mkdir(exist_ok=True)
    text = "".join(f'[[rig]]\nname = "{name}"\npath = "{path}"\n\n' for name, path in rigs.items())
    (city / ".gc" / "site.toml").write_text(text, encoding="utf-8")
    for path in rigs.values():
        path.mkdir(parents=True, exist_ok=True)


def events(city: Path, *records: dict[str, Any], name: str = "events.jsonl") -> Path:
    """Append events (their ``seq`` given) to ``<city>/.gc/<name>``."""
    log = city / ".gc" / name
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({"ts": "2026-08-13T11:52:00.123456789-04:00", "actor": "controller", **record}) + "\n")
    return log


def event(seq: int, kind: str, **extra: Any) -> dict[str, Any]:
    return {"seq": seq, "type": kind, **extra}


def install_fake_gc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``gc`` first on PATH (this process's and every process it starts): the fake; returns its state directory (the
    ``fake_gc`` fixture of conftest.py)."""
    state = tmp_path / "fake-gc"
    bin_dir = state / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "gc"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(HERE)!r})\nimport fake_gc\n"
                      "sys.exit(fake_gc.main(sys.argv[1:]))\n", encoding="utf-8")
    script.chmod(0o755)
    (state / "calls.jsonl").touch()
    monkeypatch.setenv("FAKE_GC_DIR", str(state))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return state


def no_gc(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``gc`` anywhere on PATH (a machine without Gas City)."""
    parts = [part for part in os.environ.get("PATH", "").split(os.pathsep) if part and not (Path(part) / "gc").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(parts))


def gc_rows(state: Path, *rows: dict[str, Any]) -> None:
    """What the fake's ``gc order list --json`` answers: gc's resolved rows (name, rig, exec/formula, trigger, source, ...)."""
    (state / "orders.json").write_text(json.dumps(list(rows)), encoding="utf-8")


def gc_history(state: Path, *entries: dict[str, Any]) -> None:
    (state / "history.json").write_text(json.dumps(list(entries)), encoding="utf-8")


def gc_calls(state: Path, *words: str) -> list[list[str]]:
    """The argv of every call the fake received whose words include ``words`` in order (its flags included)."""
    calls = [json.loads(line)["argv"] for line in (state / "calls.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [argv for argv in calls if [word for word in argv if word in words] == list(words)]


class Controller:
    """gc's controller as another process sees it: ``.gc/controller.lock`` held (``flock``) and ``identify`` answered."""

    def __init__(self, city: Path, pid: int = 4242, mode: str = "standalone") -> None:
        self.city, self.pid, self.mode = city, pid, mode
        self._fd: int | None = None
        self._server: socket.socket | None = None

    def __enter__(self) -> Controller:
        (self.city / ".gc").mkdir(exist_ok=True)
        self._fd = os.open(self.city / ".gc" / "controller.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        from gtcore.gascity.controller import socket_path

        path = socket_path(self.city)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(8)
        threading.Thread(target=self._answer, daemon=True).start()
        return self

    def _answer(self) -> None:
        assert self._server is not None
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(64)
                if request.startswith(b"identify"):
                    conn.sendall(json.dumps({"pid": self.pid, "hosting_mode": self.mode}).encode() + b"\n")
                elif request.startswith(b"ping"):
                    conn.sendall(f"{self.pid}\n".encode())

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        if self._fd is not None:
            os.close(self._fd)
