"""gtui's side of the ``gc`` command: the resolved order set, formula runs, order history and events written back.

Every call names the city (``--city``), has a deadline and never raises:
an answer gtui cannot use is a :class:`GcFailure` with gc's first line of
complaint.  Flags and JSON shapes follow ``cmd/gc/cmd_order.go``
(``order list``, ``order run``, ``order history``) and
``cmd/gc/cmd_event_emit.go`` (``event emit``).

``gc order list --json`` runs only when something it reads may have
changed: its answer is kept in ``<town>/.gtui/gascity/order-list.json``
with the identity (size, mtime, inode) of gc itself, the city's
``city.toml``, ``pack.toml``, ``packs.lock`` and ``.gc/site.toml``, every
order directory and every order file of the answer; a patrol of an unchanged
city never starts gc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gtcore.core.records import Record
from gtcore.core.state_files import save_json

LIST_TIMEOUT = 30.0
CALL_TIMEOUT = 10.0
INPUTS = ("city.toml", "pack.toml", "packs.lock", ".gc/site.toml")


class GcFailure(Record):
    """A gc call gtui cannot use: the command and gc's own words (or why it did not answer)."""

    command: str
    reason: str

    def __str__(self) -> str:
        return f"{self.command}: {self.reason}"


def find_gc(environ: Mapping[str, str] | None = None) -> str | None:
    """The ``gc`` on PATH (gtui's own environment's, or ``environ``'s), or None."""
    path = (os.environ if environ is None else environ).get("PATH")
    return shutil.which("gc", path=path)


def call(gc: str, city: Path, args: list[str], timeout: float = CALL_TIMEOUT) -> tuple[int, str, str] | GcFailure:
    """``gc --city CITY ARGS``: its exit status, stdout and stderr; a :class:`GcFailure` when it could not run or finish."""
    command = "gc " + " ".join(args[:2])
    try:
        done = subprocess.run([gc, "--city", str(city), *args], capture_output=True, text=True, timeout=timeout, cwd=city,
                              stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired:
        return GcFailure(command, f"did not answer within {timeout:g}s")
    except OSError as exc:
        return GcFailure(command, f"cannot run {gc}: {exc.strerror or exc}")
    return done.returncode, done.stdout, done.stderr


def _json(gc: str, city: Path, args: list[str], timeout: float = CALL_TIMEOUT) -> dict[str, Any] | GcFailure:
    answer = call(gc, city, args, timeout)
    if isinstance(answer, GcFailure):
        return answer
    code, out, err = answer
    command = "gc " + " ".join(args[:2])
    if code != 0:
        return GcFailure(command, _first_line(err) or f"exited {code}")
    try:
        payload = json.loads(out.strip().splitlines()[-1] if out.strip() else "")
    except (ValueError, IndexError):
        return GcFailure(command, f"answered no JSON ({_first_line(out) or 'nothing'})")
    return payload if isinstance(payload, dict) else GcFailure(command, "answered JSON that is not an object")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]


class Listed(Record):
    """``gc order list --json``: the orders (its ``orderJSON`` rows) and its complaints about orders it dropped."""

    orders: tuple[dict[str, Any], ...]
    dropped: tuple[str, ...]  # "order <scoped>: <error>", from its stderr


def order_list(gc: str, city: Path, roots: Iterable[str], cache: Path, *, keep: bool = True) -> Listed | GcFailure:
    """The resolved order set as gc sees it (packs, imports, locks, overrides), from ``cache`` when nothing it reads changed
    (the answer is kept there unless ``keep`` is false).  A failure is kept too: a ``gc`` that is no Gas City (graphviz has
    one) or a city gc refuses is asked again only when something changed, not on every patrol."""
    kept = _cached(cache)
    if kept is not None and kept.get("fingerprint") == _fingerprint(gc, city, roots, kept.get("sources", [])):
        failure = kept.get("failure")
        return GcFailure("gc order list", str(failure)) if failure else Listed(tuple(kept["orders"]), tuple(kept["dropped"]))
    answer = _listed(call(gc, city, ["order", "list", "--json"], LIST_TIMEOUT))
    sources = [] if isinstance(answer, GcFailure) else sorted({str(row.get("source")) for row in answer.orders if row.get("source")})
    if keep:
        shown = {"failure": answer.reason, "orders": [], "dropped": []} if isinstance(answer, GcFailure) else \
            {"orders": list(answer.orders), "dropped": list(answer.dropped)}
        save_json(cache, {"fingerprint": _fingerprint(gc, city, roots, sources), "sources": sources, **shown})
    return answer


def _listed(answer: tuple[int, str, str] | GcFailure) -> Listed | GcFailure:
    """``gc order list --json``'s answer read: its rows, and the orders its stderr says it dropped."""
    if isinstance(answer, GcFailure):
        return answer
    code, out, err = answer
    if code != 0:
        return GcFailure("gc order list", _first_line(err) or f"exited {code}")
    try:
        payload = json.loads(out)
        orders = tuple(row for row in payload.get("orders") or [] if isinstance(row, dict))
    except (ValueError, AttributeError):
        return GcFailure("gc order list", f"answered no JSON ({_first_line(out) or 'nothing'})")
    prefix = "gc order list: "
    return Listed(orders, tuple(line.strip()[len(prefix):] for line in err.splitlines() if line.strip().startswith(prefix + "order ")))


def _fingerprint(gc: str, city: Path, roots: Iterable[str], sources: Iterable[str]) -> list[Any]:
    paths = [gc, *(str(city / name) for name in INPUTS), *sorted(set(roots)), *sources, *sorted({os.path.dirname(s) for s in sources})]
    return [[path, _identity(path)] for path in paths]


def _identity(path: str) -> list[int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _cached(cache: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    good = isinstance(data, dict) and all(isinstance(data.get(key), list) for key in ("fingerprint", "orders", "dropped"))
    return data if good else None


def order_history(gc: str, city: Path, name: str, rig: str = "", limit: int = 1) -> list[dict[str, Any]] | GcFailure:
    """``gc order history NAME [--rig R] --limit N --json``: its entries, newest first."""
    args = ["order", "history", name, "--limit", str(limit), "--json"] + (["--rig", rig] if rig else [])
    payload = _json(gc, city, args)
    if isinstance(payload, GcFailure):
        return payload
    entries = payload.get("entries") or []
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


def emit_event(gc: str, city: Path, kind: str, subject: str, message: str = "") -> GcFailure | None:
    """``gc event emit TYPE --subject S --actor controller [--message M] --json`` (as gc's dispatcher records them: no payload)."""
    args = ["event", "emit", kind, "--subject", subject, "--actor", "controller", "--json"] + (["--message", message] if message else [])
    payload = _json(gc, city, args)
    if isinstance(payload, GcFailure):
        return payload
    return None if payload.get("submitted") is not False else GcFailure("gc event emit", "gc did not submit the event")
