"""The plugin-facing ``bd``: beads as Gas Town's plugins use them, kept on gtui's ledger.

``bd create ... -l type:plugin-run,result:X`` inside a run is that plugin's
own report of the run (its result, title and description become the run's
reported result, summary and detail); any other bead is a note.  ``bd list``
and ``bd show`` answer from the ledger in bd's JSON shape; ``bd close`` closes
notes; ``bd version`` says which bd this speaks for.  Anything else goes to a
real ``bd`` found later on PATH.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime

from gtcore.core.errors import GtError, Refused
from gtcore.model import TYPE_CHECKING, Bead, Report, iso
from gtui import __version__
from gtui.shims import flags
from gtui.shims.context import RunContext, actor, engine, guarded, hand_over, read, run_context, say, say_json

if TYPE_CHECKING:
    from typing import Any

BD_VERSION = "0.59.0"  # the bd whose flags and shapes these commands follow
GLOBAL_SWITCHES = {"--allow-stale", "--json", "-q", "--quiet", "--readonly", "--sandbox", "-v", "--verbose", "--no-pager"}
GLOBAL_VALUES = {"--actor", "--db", "-C", "--directory", "--format"}
STATUS = {"running": "in_progress", "acked": "open"}  # ledger status -> bd's (others are the same words)
WANTED = {"open": ("open", "acked"), "in_progress": ("running",), "closed": ("closed",)}
DEFAULT_LIMIT = 50


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    return guarded("bd", _without_globals(words), {"create": create, "list": listing, "show": show, "close": close, "version": version})


def _without_globals(argv: list[str]) -> list[str]:
    """bd's global flags may stand anywhere (``bd --allow-stale list``, ``bd create ... -q``): drop them, but keep ``--json``."""
    words: list[str] = []
    wants_json = False
    index = 0
    while index < len(argv):
        word = argv[index]
        name = word.split("=", 1)[0]
        index += 1
        if name in GLOBAL_VALUES and not words:  # a global with a value, before the subcommand
            index += 0 if "=" in word else 1
        elif name == "--json" and not words:
            wants_json = True  # before the subcommand: it still counts, after it
        elif name not in GLOBAL_SWITCHES or name == "--json":
            words.append(word)
    return [*words[:1], *(["--json"] if wants_json else []), *words[1:]]


def create(argv: list[str]) -> int:
    args = read(flags.BD_CREATE, argv)
    title = args.title_flag or args.title or ""
    if args.title and args.title_flag and args.title != args.title_flag:
        raise Refused(f"two titles given: {args.title!r} and --title {args.title_flag!r}", ("--title",))
    if not title.strip():
        raise Refused("a bead needs a title (as the argument or --title)", ("--title",))
    labels = list(dict.fromkeys([*args.labels, *([f"wisp-type:{args.wisp_type}"] if args.wisp_type else [])]))
    context = run_context()
    town = engine()
    if context is not None and _is_report_of(labels, context):
        result = next((label.split(":", 1)[1] for label in labels if label.startswith("result:")), "success")
        bead = town.report(context.run_ref, context.token, Report(result, title.strip(), (args.description or "").strip()))
    else:
        bead = town.create_note(title.strip(), description=args.description or "", labels=labels, issue_type=args.type,
                                ephemeral=args.ephemeral, actor=args.actor or actor(context))
    if args.silent:
        say(bead.ref)
    elif args.json:
        say_json(bd_json(bead))
    else:
        say(f"✓ Created issue: {bead.ref} {bd_json(bead)['title']}")
    return 0


def _is_report_of(labels: list[str], context: RunContext) -> bool:
    """A ``type:plugin-run`` bead about this very run's plugin (a ``plugin:`` label naming another is a record of that one)."""
    named = [label.split(":", 1)[1] for label in labels if label.startswith("plugin:")]
    return "type:plugin-run" in labels and (not named or context.plugin in named)


def listing(argv: list[str]) -> int:
    """bd's list of what gtui holds (runs, notes, escalations, mail); a question about Gas Town's own work goes to a real bd.

    ``--status in_progress`` without a plugin-run label asks what work is in
    progress in Gas Town (stuck-agent-dog's ``has_in_progress_work``): its
    beads, which gtui does not hold.  On gtui's ledger only plugin runs are
    ever in progress, so answering would count the calling run itself (a
    false "yes"), and answering none would hide real work (a false "no").
    """
    args = read(flags.BD_LIST, argv)
    if _asks_for_work(args.status, args.labels):
        return hand_over("bd", ["list", *argv])
    statuses = _statuses(args.status, args.all)
    limit = _limit(args.limit) if args.limit is not None or not args.all else 0  # an explicit --limit wins over --all, as in bd
    found = engine().find_beads(labels=args.labels, statuses=statuses, created_after=_when(args.created_after), limit=limit or None)
    shaped = [bd_json(bead) for bead in found if not args.type or bd_json(bead)["issue_type"] == args.type]
    if args.json:
        say_json(shaped)
    else:
        for item in shaped:
            say(f"{item['id']} [{item['status']}] {item['title']}")
    return 0


def _asks_for_work(status: str | None, labels: list[str]) -> bool:
    asked = {word.strip() for word in (status or "").split(",")}
    return "in_progress" in asked and not any(label == "type:plugin-run" or label.startswith("plugin:") for label in labels)


def _statuses(status: str | None, everything: bool) -> tuple[str, ...] | None:
    if status is None:
        return None if everything else ("open", "acked", "running")
    chosen = [word.strip() for word in status.split(",") if word.strip()]
    if "all" in chosen:
        return None
    unknown = [word for word in chosen if word not in WANTED]
    if unknown:
        raise Refused(f"--status {unknown[0]!r} is not one of open, in_progress, closed, all", ("--status",))
    return tuple(state for word in chosen for state in WANTED[word])


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit():
        raise Refused(f"--limit expects a whole number, not {text!r}", ("--limit",))
    return int(text)


def _when(text: str | None, now: float | None = None) -> float | None:
    """bd's time forms: compact ``-24h`` (``m`` months; no sign is the future, as bd reads it), a date, RFC 3339."""
    if not text:
        return None
    now = time.time() if now is None else now
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    unit = {"h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}.get(body[-1:])
    if unit and body[:-1].isdigit():
        return now + sign * int(body[:-1]) * unit
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time()).astimezone().timestamp()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise Refused(f"--created-after {text!r} is not a time (-24h, 7d, 2026-04-30, 2026-04-30T12:00:00Z)",
                      ("--created-after",)) from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def show(argv: list[str]) -> int:
    args = read(flags.BD_SHOW, argv)
    town = engine()
    found = []
    for ref in args.ids:
        try:
            found.append(bd_json(town.bead(ref), full=True))
        except GtError:
            sys.stderr.write(f"no issues found matching {ref}\n")
            return 1
    if args.json:
        say_json(found)
    else:
        for item in found:
            say(f"{item['id']}: {item['title']}\nStatus: {item['status']}\nLabels: {', '.join(item['labels'])}\n\n{item['description']}")
    return 0


def close(argv: list[str]) -> int:
    args = read(flags.BD_CLOSE, argv)
    town = engine()
    for ref in args.ids:
        bead = town.bead(ref)
        if bead.kind == "wisp":
            sys.stderr.write(f"bd: {bead.ref} is a plugin run: gtui closes it when the run ends\n")
            continue
        town.close_note(ref, args.reason or "")
        say(f"✓ Closed {bead.ref}")
    return 0


def version(argv: list[str]) -> int:
    read(flags.BD_VERSION, argv)
    say(f"bd version {BD_VERSION} (gtui {__version__})")
    return 0


def bd_json(bead: Bead, *, full: bool = False) -> dict[str, Any]:
    """A ledger record in bd's JSON shape: what plugins read with jq (``.[0].created_at``, ``.[0].status``, labels)."""
    report = bead.data.get("report") or {}
    title = (bead.body or report.get("summary") or bead.title) if bead.kind == "wisp" else bead.title
    description = report.get("detail", "") if bead.kind == "wisp" else bead.body
    shaped: dict[str, Any] = {
        "id": bead.ref,
        "title": title,
        "description": description,
        "status": STATUS.get(bead.status, bead.status),
        "priority": 2,
        "issue_type": {"wisp": "chore", "escalation": "task", "mail": "message"}.get(bead.kind) or bead.data.get("issue_type", "task"),
        "labels": list(bead.labels),
        "created_at": _stamp(bead.created_at),
        "updated_at": _stamp(bead.updated_at),
        "closed_at": _stamp(bead.closed_at) if bead.closed_at else None,
        "ephemeral": bead.kind == "wisp" or bool(bead.data.get("ephemeral")),
    }
    if full:
        shaped["close_reason"] = bead.data.get("close_reason")
    return shaped


def _stamp(timestamp: float) -> str:
    return iso(timestamp) or datetime.fromtimestamp(0, UTC).isoformat()


if __name__ == "__main__":
    raise SystemExit(main())
