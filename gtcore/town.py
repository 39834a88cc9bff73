"""The town: its root directory, its rigs and where gtui keeps its own state."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gtcore.errors import GtError, NotFound


@dataclass(frozen=True)
class Town:
    """Paths of one Gas Town installation."""

    root: Path

    @classmethod
    def locate(cls, explicit: str | os.PathLike[str] | None = None) -> Town:
        """``--town PATH``, else ``$GT_TOWN``, else ``~/gt``; it must be a directory."""
        chosen = explicit or os.environ.get("GT_TOWN") or Path.home() / "gt"
        root = Path(chosen).expanduser()
        if not root.is_dir():
            source = "--town" if explicit else ("$GT_TOWN" if os.environ.get("GT_TOWN") else "default ~/gt")
            raise NotFound(f"no town at {root} ({source}): the directory does not exist")
        return cls(root.resolve())

    @property
    def state_dir(self) -> Path:
        """``<town>/.gtui``: the ledger, run logs and gtui's own files."""
        return self.root / ".gtui"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.db"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def settings_dir(self) -> Path:
        return self.root / "settings"

    def rigs(self) -> list[str]:
        """Rig names: from ``mayor/rigs.json`` when it exists, else by looking."""
        registry = self.root / "mayor" / "rigs.json"
        if registry.exists():
            return _rigs_from_registry(registry)
        return sorted(
            child.name
            for child in self.root.iterdir()
            if child.is_dir() and _may_be_rig(child.name) and _holds_plugins(child)
        )


def _may_be_rig(name: str) -> bool:
    """Dot-directories are skipped, and ``plugins`` is the town's own plugin directory:
    a town-level plugin that happens to be called ``plugins`` must not turn it into a rig."""
    return not name.startswith(".") and name != "plugins"


def _holds_plugins(directory: Path) -> bool:
    return (directory / "plugins").is_dir() or any(
        clone.is_dir() and not clone.parent.name.startswith(".") for clone in directory.glob("crew/*/plugins")
    )


def _rigs_from_registry(path: Path) -> list[str]:
    """Read Gas Town's rig registry: an object whose keys, or whose ``rigs``, name the rigs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GtError(f"{path}: cannot read the rig list: {exc}") from None
    if isinstance(data, dict) and "rigs" in data:
        data = data["rigs"]
    if isinstance(data, dict):
        names = list(data)
    elif isinstance(data, list):
        names = [item.get("name") if isinstance(item, dict) else item for item in data]
    else:
        raise GtError(f"{path}: the rig list must be a JSON object or list, not {type(data).__name__}")
    bad = [name for name in names if not isinstance(name, str) or not name or "/" in name or name.startswith(".")]
    if bad:
        raise GtError(f"{path}: {bad[0]!r} is not a rig name")
    return list(dict.fromkeys(names))  # a rig listed twice would otherwise shadow its own plugins
