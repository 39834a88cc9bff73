"""Where a city is, as gc finds one: cheap enough for every command's start (no TOML, no dataclasses).

Sources: ``cmd/gc/city_context.go`` (``resolveExplicitCityPathEnv``),
``cmd/gc/city_discovery.go`` (``findCityWithOptions``,
``implicitCityDiscoveryCeilings``), ``internal/citylayout/layout.go``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CITY_FILE = "city.toml"
CITY_ENV = ("GC_CITY", "GC_CITY_PATH", "GC_CITY_ROOT")  # tried in this order, as gc's resolveExplicitCityPathEnv does


def is_city(directory: Path) -> bool:
    """A city root holds a regular file ``city.toml`` (``citylayout.HasCityConfig``)."""
    return (directory / CITY_FILE).is_file()


def explicit_city(environ: Mapping[str, str]) -> tuple[Path, str] | None:
    """A city named by ``GC_CITY``, ``GC_CITY_PATH`` or ``GC_CITY_ROOT`` (paths only: gtui has no supervisor registry)."""
    for name in CITY_ENV:
        value = environ.get(name, "").strip()
        if value and is_city(Path(value).expanduser()):
            return Path(value).expanduser(), f"${name}"
    return None


def ceilings(environ: Mapping[str, str]) -> set[Path]:
    """Where gc's walk up for ``city.toml`` stops: ``GC_CEILING_DIRECTORIES``, ``$HOME`` and the temporary directory."""
    found = {Path(part) for part in environ.get("GC_CEILING_DIRECTORIES", "").split(os.pathsep) if part}
    if environ.get("HOME"):
        found.add(Path(environ["HOME"]))
    found.add(Path(environ.get("TMPDIR") or "/tmp"))  # Go's os.TempDir on Unix
    return {_real(path) for path in found}


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path
