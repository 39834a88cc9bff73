"""What raising an escalation came to, said once for ``gtui escalate`` and the plugin-facing ``gt escalate``.

The bead is always written first; what follows depends on its deliveries:
all sent (or skipped because the settings name no contact: a warning of the
settings, not of this escalation) is exit 0; a delivery that failed, or that
waits because the settings cannot be read, is exit 1 with a line saying so —
the escalation is recorded, but no person has it yet.  One suppressed by its
fingerprint is Gas Town's answer, exit 0: nothing new was raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gtcore.core.errors import GtError
from gtcore.model import ROUTE_LATER, TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from gtcore.engine import Engine
    from gtcore.model import Escalation


@dataclass
class Outcome:
    payload: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    code: int = 0


SEVERITY_MARK = {"critical": "🚨", "high": "⚠️", "medium": "📢", "low": "ℹ️"}  # Gas Town's severityEmoji


def escalation_outcome(escalation: Escalation, created: bool, engine: Engine, *, given_source: bool) -> Outcome:
    """Gas Town's answer to a raise, in its words and its JSON keys (sorted, as Go prints a map), with gtui's own added:
    ``created``, ``count`` and ``related`` (and "seen again" for gtui's rule of one open escalation per source and subject).
    ``given_source``: a source was given (or set by the run), so it is said, as Gas Town says a ``--source``."""
    data = escalation.bead.data
    deliveries = [item for item in escalation.deliveries if item["channel"] != "bead"]
    pending = data.get("pending", [])
    held = any(item["channel"] == ROUTE_LATER for item in pending)
    failing = escalation.failing_deliveries()
    channels = list(dict.fromkeys(["bead", *(item["channel"] for item in deliveries + pending if item["channel"] != ROUTE_LATER)]))
    targets = [channel.split(":", 1)[1] for channel in channels if channel.startswith("mail:")]
    payload = {
        "id": escalation.ref, "created": created, "count": escalation.occurrences, "severity": escalation.severity,
        "source": escalation.source, "related": data.get("related"),
        "status": "waiting" if held else "partial_failure" if failing else "ok", "actions": channels, "targets": targets or None,
        "delivery": [{"channel": item["channel"], "ok": item["ok"], "error": item.get("error"), "skipped": bool(item.get("skipped"))}
                     for item in deliveries],
        **({"fingerprint": escalation.fingerprint} if escalation.fingerprint else {}),
    }
    said = "created" if created else f"seen again (count {escalation.occurrences})"
    lines = [f"{SEVERITY_MARK.get(escalation.severity, '📋')} Escalation {said}: {escalation.ref}", f"  Severity: {escalation.severity}",
             *([f"  Source: {escalation.source}"] if given_source else []),
             *([f"  Fingerprint: {escalation.fingerprint}"] if escalation.fingerprint else []),
             f"  Routed to: {', '.join(targets)}",
             *(f"  Delivery issue [{item['channel']}]: {item['error']}" for item in deliveries
               if not item["ok"] and not item.get("skipped") and item.get("error"))]  # a skipped one is a warning in Gas Town
    outcome = Outcome(dict(sorted(payload.items())), lines)
    if held:
        try:
            engine.escalation_settings()
        except GtError as exc:
            outcome.warnings.append(f"{escalation.ref} is recorded, but its delivery waits until this is fixed: {exc}")
        outcome.code = 1
    for item in failing:
        outcome.warnings.append(f"{escalation.ref} is recorded, but {item['channel']} failed (retried by later patrols): {item['error']}")
        outcome.code = 1
    return outcome


def suppressed_outcome(escalation: Escalation) -> Outcome:
    """Gas Town's answer when an escalation with the same fingerprint is still open or acknowledged: nothing new is raised."""
    payload = {"fingerprint": escalation.fingerprint, "id": escalation.ref, "status": "duplicate_suppressed"}
    return Outcome(payload, [f"✓ Duplicate escalation suppressed: {escalation.ref}", f"  Fingerprint: {escalation.fingerprint}"])


def dry_run_lines(subject: str, severity: str, reason: str, source: str | None, label: str | None,
                  route: tuple[str, ...]) -> list[str]:
    """Gas Town's ``gt escalate --dry-run``: what would be created and where it would go."""
    targets = [action.split(":", 1)[1] for action in route if action.startswith("mail:") and action != "mail:"]
    return ["Would create escalation:", f"  Severity: {severity}", f"  Description: {subject}",
            *([f"  Reason: {reason}"] if reason else []), *([f"  Source: {source}"] if source else []),
            *([f"  Fingerprint: {label}"] if label else []),
            f"  Actions: {', '.join(route)}", f"  Mail targets: {', '.join(targets)}"]
