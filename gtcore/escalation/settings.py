"""``<town>/settings/escalation.json``, read exactly as Gas Town writes it.

Gas Town's schema: ``type`` ("escalation"), ``version``, ``routes`` (severity
-> actions: ``bead``, ``mail:<target>``, ``email:human``, ``sms:human``,
``slack``, ``log``), ``contacts`` (strings; ``smtp_port`` a string in Gas
Town's files, a number accepted too), ``stale_threshold`` (default ``4h``),
``max_reescalations`` (default 2).  The file ``gt install`` writes — every
route, empty contacts — is accepted as it is.

One part of the file never spoils the rest: an action whose contact is
missing, or that gtui does not know, is skipped (recorded as such on each
escalation it would have carried) and reported as a :class:`Problem`; only
a file that cannot be read as this schema at all is a :class:`SettingsError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from gtcore.core.beads import SEVERITIES
from gtcore.core.durations import Duration, parse_duration
from gtcore.core.errors import Problem, SettingsError, brief
from gtcore.core.records import TYPE_CHECKING, Record
from gtcore.town.settings import read_settings_text, unknown_keys

if TYPE_CHECKING:
    from typing import Any

# Gas Town's defaults when there is no file (``NewEscalationConfig``, what ``gt install`` writes).
DEFAULT_ROUTES: dict[str, tuple[str, ...]] = {
    "low": ("bead",),
    "medium": ("bead", "mail:mayor"),
    "high": ("bead", "mail:mayor", "email:human"),
    "critical": ("bead", "mail:mayor", "email:human", "sms:human"),
}
# A severity a file leaves out: Gas Town's ``GetRouteForSeverity`` fallback, whatever the severity.
UNROUTED = ("bead", "mail:mayor")
DEFAULT_STALE_THRESHOLD = parse_duration("4h")
DEFAULT_SMTP_PORT = 587  # Gas Town's, when contacts give none
KNOWN_KEYS = {"type", "version", "routes", "contacts", "stale_threshold", "max_reescalations"}
CONTACT_STRINGS = ("human_email", "human_sms", "smtp_host", "smtp_from", "smtp_user", "smtp_pass", "sms_webhook", "slack_webhook")
CONTACT_KEYS = {*CONTACT_STRINGS, "smtp_port", "smtp_starttls"}
SCHEMA_VERSION = 1
NEEDS = {
    "email:human": ("human_email", "smtp_host"),
    "sms:human": ("human_sms", "sms_webhook"),
    "slack": ("slack_webhook",),
}


class Contacts(Record):
    """Where people are reached; secrets may come from the environment."""

    human_email: str = ""
    human_sms: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_from: str = "gtui@localhost"
    smtp_user: str = ""
    smtp_pass: str = ""
    smtp_starttls: bool = False
    sms_webhook: str = ""
    slack_webhook: str = ""


ACTIONS = ("bead", "email:human", "sms:human", "slack", "log")


def valid_action(action: str) -> bool:
    return action in ACTIONS or (action.startswith("mail:") and len(action) > len("mail:"))


class EscalationSettings(Record):
    """What the file says: routes, contacts, staleness, and what of it cannot be used.

    ``skipped`` maps an action of a route to why it cannot be delivered (a
    missing contact, an unknown action); ``problems`` say the same for people.
    """

    routes: Mapping[str, tuple[str, ...]] = MappingProxyType(DEFAULT_ROUTES)
    contacts: Contacts = Contacts()
    stale_threshold: Duration = DEFAULT_STALE_THRESHOLD
    max_reescalations: int = 2
    skipped: Mapping[str, str] = MappingProxyType({})
    problems: tuple[Problem, ...] = ()


def load_escalation_settings(settings_dir: Path, environ: Mapping[str, str] | None = None) -> EscalationSettings:
    """Read the settings; Gas Town's defaults when the file does not exist.  Raises only :class:`SettingsError`."""
    env = os.environ if environ is None else environ
    path = settings_dir / "escalation.json"
    try:
        data = json.loads(read_settings_text(path))
    except FileNotFoundError:  # Gas Town's defaults, chosen by leaving the file out: nothing to warn about on every patrol
        defaults = _settings(path, {"routes": {severity: list(route) for severity, route in DEFAULT_ROUTES.items()}}, env)
        return defaults._replace(problems=())
    except json.JSONDecodeError as exc:
        raise SettingsError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # a number of thousands of digits
        raise SettingsError(path, f"invalid JSON: {brief(exc, 120)}") from None
    except RecursionError:
        raise SettingsError(path, "nested too deeply to be settings") from None
    try:
        return _settings(path, data, env)
    except SettingsError:
        raise
    except Exception as exc:  # a bug in gtui: said as such, and still a settings error of this file only
        raise SettingsError(path, f"gtui failed to read this file (a bug in gtui): {type(exc).__name__}: {brief(exc)}") from None


def _settings(path: Path, data: Any, env: Mapping[str, str]) -> EscalationSettings:
    if not isinstance(data, dict):
        raise SettingsError(path, "must be a JSON object")
    problems = unknown_keys(path, data, KNOWN_KEYS)
    kind = data.get("type", "escalation")
    if kind not in ("escalation", ""):
        raise SettingsError(path, f"must be \"escalation\", not {brief(kind)}", field="type")
    version = data.get("version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise SettingsError(path, f"must be a whole number, not {brief(version)}", field="version")
    if version > SCHEMA_VERSION:
        problems.append(Problem(str(path), "version", f"is {version}; gtui knows version {SCHEMA_VERSION} and reads what it knows",
                                "warning"))
    raw_contacts = data.get("contacts") or {}
    contacts = _contacts(path, raw_contacts, env)
    if isinstance(raw_contacts, dict):
        problems += unknown_keys(path, raw_contacts, CONTACT_KEYS, prefix="contacts.")
    written = data.get("routes") or {}
    routes = _routes(path, written)
    skipped, route_problems = _undeliverable(path, routes, written, contacts)
    try:
        threshold = parse_duration(data.get("stale_threshold") or "4h")
    except ValueError as exc:
        raise SettingsError(path, str(exc), field="stale_threshold") from None
    if threshold.seconds <= 0:
        raise SettingsError(path, "must be longer than zero", field="stale_threshold")
    maximum = data.get("max_reescalations", 2)
    if maximum is None:
        maximum = 2
    if not isinstance(maximum, int) or isinstance(maximum, bool) or maximum < 0:
        raise SettingsError(path, f"must be a whole number of at least 0, not {brief(maximum)}", field="max_reescalations")
    return EscalationSettings(routes, contacts, threshold, maximum, skipped, tuple(problems + route_problems))


def _contacts(path: Path, raw: Any, env: Mapping[str, str]) -> Contacts:
    if not isinstance(raw, dict):
        raise SettingsError(path, "must be an object", field="contacts")
    for key in CONTACT_STRINGS:
        if key in raw and not isinstance(raw[key], str):
            raise SettingsError(path, "must be a string", field=f"contacts.{key}")
        if key in raw and _has_control(raw[key]):
            raise SettingsError(path, "must be one line without control characters", field=f"contacts.{key}")
    for key in ("sms_webhook", "slack_webhook"):
        if raw.get(key) and _scheme(raw[key]) not in ("http", "https"):
            raise SettingsError(path, f"must be an http:// or https:// URL, not {brief(raw[key])}", field=f"contacts.{key}")
    starttls = raw.get("smtp_starttls", False)
    if not isinstance(starttls, bool):
        raise SettingsError(path, "must be true or false", field="contacts.smtp_starttls")
    values = {key: raw[key] for key in CONTACT_STRINGS if raw.get(key)}
    if env.get("GT_SMTP_PASS"):
        values["smtp_pass"] = env["GT_SMTP_PASS"]
    return Contacts(smtp_port=_port(path, raw.get("smtp_port")), smtp_starttls=starttls, **values)


def _port(path: Path, raw: Any) -> int:
    """Gas Town writes the port as a string ("587"); a number is fine too; absent or empty is 587."""
    if raw is None or raw == "":
        return DEFAULT_SMTP_PORT
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, str) and text.isdigit() and len(text) <= 5:
        text = int(text)
    if not isinstance(text, int) or isinstance(text, bool) or not 0 < text < 65536:
        raise SettingsError(path, f"must be a port number (a number or a string of digits), not {brief(raw)}", field="contacts.smtp_port")
    return text


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError:  # "http://[" is no URL at all
        return ""


def _has_control(text: str) -> bool:
    """A line break in an address would become an email header of its own (and crash the message build)."""
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def _routes(path: Path, raw: Any) -> dict[str, tuple[str, ...]]:
    """Every severity's actions: as written, else Gas Town's fallback (bead, mail:mayor); ``bead`` always first."""
    if not isinstance(raw, dict):
        raise SettingsError(path, "must be an object of severity -> list of actions", field="routes")
    routes: dict[str, tuple[str, ...]] = dict.fromkeys(SEVERITIES, UNROUTED)
    for severity, actions in raw.items():
        if severity not in SEVERITIES:
            raise SettingsError(path, "is not a severity (low, medium, high, critical)", field=f"routes.{severity}")
        if not isinstance(actions, list):
            raise SettingsError(path, "must be a list of actions", field=f"routes.{severity}")
        routes[severity] = tuple(dict.fromkeys(["bead", *(action if isinstance(action, str) else repr(action) for action in actions)]))
    return routes


def _undeliverable(path: Path, routes: dict[str, tuple[str, ...]], written: dict[str, Any],
                   contacts: Contacts) -> tuple[dict[str, str], list[Problem]]:
    """Actions of the routes that cannot be delivered, with why; one problem per unknown action and per missing contact."""
    skipped: dict[str, str] = {}
    problems: list[Problem] = []
    unsent: dict[tuple[str, str], list[str]] = {}  # (missing contact, action) -> severities it leaves unsent
    for severity, actions in routes.items():
        as_written = [item if isinstance(item, str) else repr(item) for item in written.get(severity, [])]
        for action in actions:
            if not valid_action(action):
                where = f"routes.{severity}[{as_written.index(action)}]" if action in as_written else f"routes.{severity}"
                skipped[action] = f"{brief(action)} is not an action (bead, mail:<target>, email:human, sms:human, slack, log)"
                problems.append(Problem(str(path), where, f"{skipped[action]}: it is skipped", "error"))
                continue
            missing = [key for key in NEEDS.get(action, ()) if not getattr(contacts, key)]
            if missing:
                skipped[action] = f"skipped: {action} needs contacts.{missing[0]} in settings/escalation.json"
                unsent.setdefault((missing[0], action), []).append(severity)
    for (contact, action), severities in unsent.items():
        problems.append(Problem(str(path), f"contacts.{contact}",
                                f"is not set, so {' and '.join(severities)} escalations are not sent by {action} (skipped)", "warning"))
    return skipped, problems
