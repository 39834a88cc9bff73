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

from gtcore.errors import GtError
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


def escalation_outcome(escalation: Escalation, created: bool, engine: Engine) -> Outcome:
    data = escalation.bead.data
    deliveries = [item for item in escalation.deliveries if item["channel"] != "bead"]
    pending = data.get("pending", [])
    held = any(item["channel"] == ROUTE_LATER for item in pending)
    failing = escalation.failing_deliveries()
    channels = list(dict.fromkeys(["bead", *(item["channel"] for item in deliveries + pending if item["channel"] != ROUTE_LATER)]))
    status = "waiting" if held else "partial_failure" if failing else "ok"
    payload = {
        "id": escalation.ref, "created": created, "count": escalation.count, "severity": escalation.severity,
        "source": escalation.source, "related": data.get("related"), "status": status, "actions": channels,
        "targets": [channel.split(":", 1)[1] for channel in channels if channel.startswith("mail:")] or None,
        "delivery": [{"channel": item["channel"], "ok": item["ok"], "error": item.get("error"), "skipped": bool(item.get("skipped"))}
                     for item in deliveries],
        **({"fingerprint": escalation.fingerprint} if escalation.fingerprint else {}),
    }
    word = "raised" if created else f"seen again (count {escalation.count})"
    outcome = Outcome(payload, [f"{escalation.ref} {word} ({escalation.severity}, from {escalation.source}): {escalation.subject}"])
    if escalation.fingerprint:
        outcome.lines.append(f"  Fingerprint: {escalation.fingerprint}")
    outcome.lines += [f"  {item['channel']}: {'sent' if item['ok'] else item.get('error') or 'not sent'}" for item in deliveries]
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
    payload = {"id": escalation.ref, "status": "duplicate_suppressed", "fingerprint": escalation.fingerprint}
    return Outcome(payload, [f"✓ Duplicate escalation suppressed: {escalation.ref}", f"  Fingerprint: {escalation.fingerprint}"])
