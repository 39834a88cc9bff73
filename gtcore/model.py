"""The faces' façade (CLI, control room): every record and pure helper they read, from one module.

The ledger's vocabulary (:mod:`gtcore.core.beads`) is re-exported as it is;
records defined beside the code that makes them (a plugin, a gate decision,
an escalation, a patrol report...) and the pure helpers the faces format them
with are re-exported lazily (PEP 562): ``from gtcore.model import Plugin``
imports :mod:`gtcore.plugins.spec` when it is asked for, so importing the
model stays as cheap as the vocabulary, and a face pays only for the names it
uses.  No engine module imports this one (tests/test_imports.py holds that):
they import each record from its home.
"""

from __future__ import annotations

from gtcore import __version__ as __version__  # for the faces, which import only the model
from gtcore.core.beads import (
    ANSWERED_ELSEWHERE as ANSWERED_ELSEWHERE,
)
from gtcore.core.beads import (
    DOG_NAMES as DOG_NAMES,
)
from gtcore.core.beads import (
    FAILED as FAILED,
)
from gtcore.core.beads import (
    KIND_WORDS as KIND_WORDS,
)
from gtcore.core.beads import (
    MAX_ID as MAX_ID,
)
from gtcore.core.beads import (
    NOUNS as NOUNS,
)
from gtcore.core.beads import (
    PREFIX as PREFIX,
)
from gtcore.core.beads import (
    REPORTABLE as REPORTABLE,
)
from gtcore.core.beads import (
    SEVERITIES as SEVERITIES,
)
from gtcore.core.beads import (
    UNCLOSED as UNCLOSED,
)
from gtcore.core.beads import (
    UNFINISHED as UNFINISHED,
)
from gtcore.core.beads import (
    Bead as Bead,
)
from gtcore.core.beads import (
    Dog as Dog,
)
from gtcore.core.beads import (
    Drift as Drift,
)
from gtcore.core.beads import (
    DriftOutcome as DriftOutcome,
)
from gtcore.core.beads import (
    EscalationStatus as EscalationStatus,
)
from gtcore.core.beads import (
    GateState as GateState,
)
from gtcore.core.beads import (
    PluginStats as PluginStats,
)
from gtcore.core.beads import (
    Report as Report,
)
from gtcore.core.beads import (
    Result as Result,
)
from gtcore.core.beads import (
    Severity as Severity,
)
from gtcore.core.beads import (
    dog_names as dog_names,
)
from gtcore.core.beads import (
    format_ref as format_ref,
)
from gtcore.core.beads import (
    parse_ref as parse_ref,
)
from gtcore.core.beads import (
    readable as readable,
)
from gtcore.core.beads import (
    settle as settle,
)
from gtcore.core.errors import Problem as Problem
from gtcore.core.records import TYPE_CHECKING as TYPE_CHECKING
from gtcore.core.records import Record as Record

if TYPE_CHECKING:
    from typing import Any

    from gtcore.core.clock import age as age
    from gtcore.core.clock import iso as iso
    from gtcore.core.durations import format_duration as format_duration
    from gtcore.core.durations import parse_duration as parse_duration
    from gtcore.core.safe_text import clean as clean
    from gtcore.digest import DigestResult as DigestResult
    from gtcore.digest import digest_title as digest_title
    from gtcore.digest import utc_day as utc_day
    from gtcore.dogs.processes import carries as carries
    from gtcore.escalation.escalations import Escalation as Escalation
    from gtcore.escalation.escalations import fingerprint_label as fingerprint_label
    from gtcore.escalation.settings import EscalationSettings as EscalationSettings
    from gtcore.gates.decisions import GateDecision as GateDecision
    from gtcore.patrol.cycle import PatrolReport as PatrolReport
    from gtcore.patrol.health import HealthWord as HealthWord
    from gtcore.patrol.health import PluginFacts as PluginFacts
    from gtcore.patrol.health import run_reason as run_reason
    from gtcore.patrol.health import run_summary as run_summary
    from gtcore.patrol.shapes import drift_words as drift_words
    from gtcore.patrol.shapes import finished_json as finished_json
    from gtcore.patrol.shapes import plugin_json as plugin_json
    from gtcore.patrol.shapes import run_json as run_json
    from gtcore.patrol.shapes import run_problems as run_problems
    from gtcore.plugins.discovery import PluginSet as PluginSet
    from gtcore.plugins.scan_keeper import ScanKeeper as ScanKeeper
    from gtcore.plugins.spec import InvalidPlugin as InvalidPlugin
    from gtcore.plugins.spec import Plugin as Plugin
    from gtcore.storage.contract import ROUTE_LATER as ROUTE_LATER
    from gtcore.storage.contract import Pause as Pause
    from gtcore.town.layout import Town as Town
    from gtcore.town.stale import BinaryStatus as BinaryStatus

HOMES = {
    "gtcore.core.clock": ("age", "iso"),
    "gtcore.core.durations": ("format_duration", "parse_duration"),
    "gtcore.core.safe_text": ("clean",),
    "gtcore.digest": ("DigestResult", "digest_title", "utc_day"),
    "gtcore.dogs.processes": ("carries",),
    "gtcore.escalation.escalations": ("Escalation", "fingerprint_label"),
    "gtcore.escalation.settings": ("EscalationSettings",),
    "gtcore.gates.decisions": ("GateDecision",),
    "gtcore.patrol.cycle": ("PatrolReport",),
    "gtcore.patrol.health": ("HealthWord", "PluginFacts", "run_reason", "run_summary"),
    "gtcore.patrol.shapes": ("plugin_json", "run_json", "finished_json", "run_problems", "drift_words"),
    "gtcore.plugins.discovery": ("PluginSet",),
    "gtcore.plugins.scan_keeper": ("ScanKeeper",),
    "gtcore.plugins.spec": ("InvalidPlugin", "Plugin"),
    "gtcore.storage.contract": ("ROUTE_LATER", "Pause"),
    "gtcore.town.layout": ("Town",),
    "gtcore.town.stale": ("BinaryStatus",),
}
"""Records and pure helpers defined elsewhere, by the module each is imported from when it is first asked for."""
ELSEWHERE = {name: module for module, names in HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """A name of :data:`ELSEWHERE`, imported on first use and kept here, so the next lookup is a plain attribute."""
    module = ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(module, fromlist=(name,)), name)
    globals()[name] = value
    return value
