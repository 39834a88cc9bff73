"""A FAKE ``gc`` (Gas City's command) for gtui's tests: the commands gtui calls, with gc's flags, JSON shapes and words.

It is not Gas City.  It answers from files a test writes into ``$FAKE_GC_DIR``
instead of resolving packs or reading a bead store, and it records every
call it receives (``calls.jsonl``: argv, working directory, GC_* environment)
so a test can assert what gtui asked.  What it prints follows Gas City at
commit ed267ad66b5f20f60166960560d4adbdf42336c3:

- ``gc order list [--json]``: ``cmd/gc/cmd_order.go`` (``orderListJSON``,
  ``orderJSON`` with its ``omitempty`` fields; an ``ok`` injected, so the
  top-level keys come out sorted by ``writeCLIJSONLine``); the rows are
  ``orders.json``, the stderr lines for dropped orders ``list-stderr.txt``;
  ``list-fails`` makes it fail as a city whose scan fails does (exit 1).
- ``gc order run NAME [--rig R] [--json]``: ``orderRunJSON`` (struct order,
  ``ok`` its own field) for a formula order, ``Order "x" executed: wisp ID``
  without ``--json``; ``--json`` refused for an exec order; ``order "x" not
  found``.  The wisp ids are ``<prefix>-w<N>``.
- ``gc order history [NAME] [--rig R] [--limit N] [--json]``:
  ``orderHistoryJSONResult`` / ``orderHistoryJSONEntry`` (``executed`` is
  RFC 3339, ``created_at`` RFC 3339 with nanoseconds), newest first, from
  ``history.json``; ``--limit`` default 50, 0 every run, negative refused.
- ``gc event emit TYPE [--subject S] [--message M] [--actor A] [--payload J]
  [--json]``: ``cmd/gc/cmd_event_emit.go`` (``eventEmitJSONResult``; actor
  ``$GC_ALIAS``, ``$GC_AGENT``, ``$GC_SESSION_ID``, ``$BEADS_ACTOR``, else
  ``human``; invalid JSON payload refused on stderr; always exit 0); the
  event is appended to ``<city>/.gc/events.jsonl`` under ``flock`` with the
  next ``seq`` (``internal/events/recorder.go``).
- ``--city PATH`` anywhere (a root persistent flag), else ``$GC_CITY``, else
  the working directory's city.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ORDER_FIELDS = ("name", "scoped_name", "rig", "description", "type", "formula", "exec", "trigger", "interval", "schedule", "check", "on",
                "target", "timeout", "check_timeout", "enabled", "source", "formula_layer", "env")
ALWAYS = {"name", "scoped_name", "type", "trigger", "enabled"}  # orderJSON fields without omitempty


def main(argv: list[str]) -> int:
    state = Path(os.environ["FAKE_GC_DIR"])
    flags, words = _split(argv)
    city = Path(flags.get("city") or os.environ.get("GC_CITY") or _find_city(Path.cwd()))
    with open(state / "calls.jsonl", "a", encoding="utf-8") as calls:
        calls.write(json.dumps({"argv": argv, "cwd": os.getcwd(),
                                "env": {key: value for key, value in os.environ.items() if key.startswith("GC_")}}) + "\n")
    command = tuple(words[:2])
    handler = {("order", "list"): order_list, ("order", "run"): order_run, ("order", "history"): order_history,
               ("event", "emit"): event_emit}.get(command)
    if handler is None:
        sys.stderr.write(f"gc: unknown command {' '.join(words)!r} (fake gc)\n")
        return 1
    return handler(state, city, flags, words[2:])


VALUED = {"city", "rig", "limit", "since", "subject", "message", "actor", "payload", "bead-payload", "var"}


def _split(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """cobra's way with flags: ``--name value`` or ``--name=value`` anywhere, booleans bare."""
    flags: dict[str, Any] = {}
    words: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token.startswith("--"):
            name, equals, value = token[2:].partition("=")
            if name in VALUED and not equals:
                index += 1
                value = argv[index] if index < len(argv) else ""
            flags[name] = value if name in VALUED else True
        else:
            words.append(token)
        index += 1
    return flags, words


def _find_city(start: Path) -> str:
    for directory in (start, *start.parents):
        if (directory / "city.toml").is_file():
            return str(directory)
    return str(start)


def _line(payload: dict[str, Any], *, sort: bool) -> None:
    sys.stdout.write(json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=sort) + "\n")


def _rows(state: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((state / "orders.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []


def _order_json(row: dict[str, Any]) -> dict[str, Any]:
    """One ``orderJSON`` row in struct order, empty fields left out as ``omitempty`` leaves them."""
    scoped = row["name"] + (f":rig:{row['rig']}" if row.get("rig") else "")
    full = {**row, "scoped_name": scoped, "type": "exec" if row.get("exec") else "formula", "enabled": row.get("enabled", True)}
    return {key: full[key] for key in ORDER_FIELDS if key in ALWAYS or full.get(key)}


def order_list(state: Path, city: Path, flags: dict[str, Any], rest: list[str]) -> int:
    if (state / "list-fails").exists():
        sys.stderr.write((state / "list-fails").read_text(encoding="utf-8"))
        return 1
    rows = [_order_json(row) for row in _rows(state) if row.get("enabled", True)]
    if (state / "list-stderr.txt").exists():
        sys.stderr.write((state / "list-stderr.txt").read_text(encoding="utf-8"))
    if not flags.get("json"):
        for row in rows:
            sys.stdout.write(f"{row['name']:<20} {row['type']:<8} {row['trigger']:<12} {row.get('interval') or '-':<15} "
                             f"{row.get('target', '')}\n")
        return 0
    _line({"schema_version": "1", "city_path": str(city), "city_name": city.name, "orders": rows, "summary": {"count": len(rows)},
           "ok": True}, sort=True)
    return 0


def order_run(state: Path, city: Path, flags: dict[str, Any], rest: list[str]) -> int:
    name = rest[0] if rest else ""
    rig = flags.get("rig", "")
    found = next((row for row in _rows(state) if row["name"] == name and (not rig or row.get("rig", "") == rig)), None)
    if found is None:
        sys.stderr.write(f'gc order run: order "{name}" not found\n')
        return 1
    if found.get("exec"):
        if flags.get("json"):
            sys.stderr.write("gc order run: --json is not supported for exec orders because the exec body may write arbitrary stdout\n")
            return 1
        sys.stdout.write(f'Order "{name}" executed (exec)\n')
        return 0
    count = len((state / "calls.jsonl").read_text(encoding="utf-8").splitlines())
    wisp = f"{found.get('wisp_prefix', 'mc')}-w{count}"
    scoped = name + (f":rig:{found['rig']}" if found.get("rig") else "")
    routed = found.get("routed_to", "")
    if flags.get("json"):
        payload: dict[str, Any] = {"schema_version": "1", "ok": True, "order": name}
        if found.get("rig"):
            payload["rig"] = found["rig"]
        payload |= {"scoped_name": scoped, "action": "formula", "wisp_id": wisp}
        if routed:
            payload["routed_to"] = routed
        _line(payload, sort=False)
    else:
        sys.stdout.write(f'Order "{name}" executed: wisp {wisp}' + (f" → gc.routed_to={routed}" if routed else "") + "\n")
    return 0


def order_history(state: Path, city: Path, flags: dict[str, Any], rest: list[str]) -> int:
    limit_text = str(flags.get("limit", "50"))
    limit = int(limit_text)
    if limit < 0:
        sys.stderr.write(f"gc order history: --limit {limit}: want a non-negative count (0 fetches every retained run)\n")
        return 1
    name, rig = (rest[0] if rest else ""), flags.get("rig", "")
    try:
        entries = json.loads((state / "history.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        entries = []
    chosen = [entry for entry in entries if (not name or entry["order"] == name) and (not rig or entry.get("rig", "") == rig)]
    chosen.sort(key=lambda entry: entry["created_at"], reverse=True)
    chosen = chosen[:limit] if limit else chosen
    shown = [{"order": entry["order"], **({"rig": entry["rig"]} if entry.get("rig") else {}), "bead_id": entry["bead_id"],
              "executed": entry["created_at"][:19] + "Z", "created_at": entry["created_at"]} for entry in chosen]
    payload: dict[str, Any] = {"schema_version": "1", "ok": True}
    if name:
        payload["name"] = name
    if rig:
        payload["rig"] = rig
    payload |= {"entries": shown, "summary": {"total": len(shown)}}
    _line(payload, sort=False)
    return 0


def event_emit(state: Path, city: Path, flags: dict[str, Any], rest: list[str]) -> int:
    kind = rest[0] if rest else ""
    actor = flags.get("actor") or next((os.environ[key] for key in ("GC_ALIAS", "GC_AGENT", "GC_SESSION_ID", "BEADS_ACTOR")
                                         if os.environ.get(key)), "human")
    payload_text = flags.get("payload", "")
    payload = None
    if payload_text:
        try:
            payload = json.loads(payload_text)
        except ValueError:
            sys.stderr.write("gc event emit: --payload is not valid JSON\n")
            payload_text = ""
    event: dict[str, Any] = {"type": kind, "ts": datetime.now(UTC).isoformat(), "actor": actor}
    for key in ("subject", "message"):
        if flags.get(key):
            event[key] = flags[key]
    if payload is not None:
        event["payload"] = payload
    _record(city / ".gc" / "events.jsonl", event)
    if flags.get("json"):
        result: dict[str, Any] = {"schema_version": "1", "ok": True, "event_type": kind, "actor": actor}
        for key in ("subject", "message"):
            if flags.get(key):
                result[key] = flags[key]
        result |= {"has_payload": bool(payload_text), "submitted": True}
        _line(result, sort=False)
    return 0


def _record(log: Path, event: dict[str, Any]) -> None:
    """Append under ``flock`` with the next ``seq`` after the active file's last (as the file recorder does)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        last = 0
        for line in handle:
            try:
                last = max(last, int(json.loads(line)["seq"]))
            except (ValueError, KeyError, TypeError):
                continue
        handle.write(json.dumps({"seq": last + 1, **event}, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
