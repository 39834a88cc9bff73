"""A town laid out the way Gas Town's ``gt install`` and ``gt rig add`` leave it, for the Gas Town compatibility tests.

Why a builder of its own: gtui must work on a real Gas Town as found on disk, not only on towns gtui
made.  So the files here carry Gas Town's exact shapes (see /work/notes/gastown.md §7): ``mayor/town.json``,
``mayor/rigs.json`` with two rigs, ``mayor/daemon.json`` as ``gt install`` writes it (no ``handler``
patrol key, so Gas Town's own daemon dispatches cooldown plugins too), the byte-exact
``settings/escalation.json`` of ``gt install``, and each rig's canonical clone ``<rig>/mayor/rig``
as a real git repository with one commit.  Plugins written here use Gas Town's frontmatter layout
(``version``, ``[gate]``, ``[tracking]``, ``[execution]``, lowercase severity) and ``run.sh`` under
``set -euo pipefail``, as the 13 shipped plugins do.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

# `gt install` writes NewEscalationConfig() with MarshalIndent(2 spaces), no trailing newline, empty
# contacts as {}, smtp_port absent (gastown.md §7.3).  Byte for byte.
INSTALL_ESCALATION_JSON = """{
  "type": "escalation",
  "version": 1,
  "routes": {
    "critical": [
      "bead",
      "mail:mayor",
      "email:human",
      "sms:human"
    ],
    "high": [
      "bead",
      "mail:mayor",
      "email:human"
    ],
    "low": [
      "bead"
    ],
    "medium": [
      "bead",
      "mail:mayor"
    ]
  },
  "contacts": {},
  "stale_threshold": "4h",
  "max_reescalations": 2
}"""

# NewDaemonPatrolConfig(): heartbeat plus the deacon, refinery and witness patrols; no "handler" key,
# which Gas Town reads as "handler patrol enabled" (gastown.md §9).  Map keys sorted, as Go marshals them.
INSTALL_DAEMON_CONFIG: dict[str, object] = {
    "type": "daemon-patrol-config",
    "version": 1,
    "heartbeat": {"enabled": True, "interval": "3m"},
    "patrols": {
        "deacon": {"enabled": True, "interval": "5m", "agent": "deacon"},
        "refinery": {"enabled": True, "interval": "5m", "agent": "refinery"},
        "witness": {"enabled": True, "interval": "5m", "agent": "witness"},
    },
}

RIGS: dict[str, str] = {"gastown": "gt", "beads": "bd"}  # rig name -> beads prefix, as `gt rig add` records them

# Short everything: the tests wait for real processes, so timeouts must not be minutes.
SETTINGS = 'dogs = 4\nkill_grace = "1s"\ndelivery_timeout = "2s"\n'

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Gas Town", "GIT_AUTHOR_EMAIL": "mayor@example.com",
    "GIT_COMMITTER_NAME": "Gas Town", "GIT_COMMITTER_EMAIL": "mayor@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity and no user config (the machine's config must not matter)."""
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env={**os.environ, **GIT_ENV},
                          check=True, timeout=30)
    return done.stdout.strip()


def commit(repo: Path, message: str = "more work", where: str = "CHANGES.md") -> str:
    """One more commit on the checked-out branch, adding ``message`` to ``where``; returns the new HEAD.

    A real change: Gas Town's ``gt stale`` does not count commits that change nothing (or only ``.beads/``).
    """
    target = repo / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((target.read_text(encoding="utf-8") if target.exists() else "") + message + "\n", encoding="utf-8")
    git(repo, "add", where)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def write_json(path: Path, data: object) -> Path:
    """Go's ``json.MarshalIndent(v, "", "  ")`` without a trailing newline: how gt saves its config files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def gastown_town(root: Path, settings: str = SETTINGS) -> Path:
    """Lay out a Gas Town at ``root``: mayor/, settings/, two rigs with a real canonical clone each.

    Returns ``root``.  Each rig gets ``mayor/rig`` (``git init -b main`` + one commit, a README),
    ``crew/max/``, ``polecats/`` and ``plugins/``; the town gets ``plugins/`` as ``gt install`` does.
    """
    created = "2026-04-30T09:02:38.123456789-04:00"
    write_json(root / "mayor" / "town.json", {
        "type": "town", "version": 2, "name": "gt", "owner": "op@example.com", "public_name": "gt", "created_at": created,
    })
    write_json(root / "mayor" / "rigs.json", {"version": 1, "rigs": {
        name: {"git_url": f"https://github.com/example/{name}.git", "added_at": "2026-04-30T09:10:00Z",
               "beads": {"repo": "", "prefix": prefix}}
        for name, prefix in RIGS.items()
    }})
    write_json(root / "mayor" / "daemon.json", INSTALL_DAEMON_CONFIG)
    (root / "settings").mkdir(parents=True, exist_ok=True)
    (root / "settings" / "escalation.json").write_text(INSTALL_ESCALATION_JSON, encoding="utf-8")
    (root / "settings" / "gtui.toml").write_text(settings, encoding="utf-8")
    (root / "plugins").mkdir(exist_ok=True)
    for name in RIGS:
        rig = root / name
        for directory in ("crew/max", "polecats", "plugins", "witness", "refinery"):
            (rig / directory).mkdir(parents=True, exist_ok=True)
        clone = rig / "mayor" / "rig"
        clone.mkdir(parents=True)
        git(clone, "init", "-q", "-b", "main")
        (clone / "README.md").write_text(f"# {name}\n", encoding="utf-8")
        git(clone, "add", "README.md")
        git(clone, "commit", "-q", "-m", f"{name}: first commit")
    return root


def gastown_plugin(
    town: Path,
    name: str,
    run_sh: str | None,
    *,
    gate: str | None = 'type = "cooldown"\nduration = "1h"',
    execution: str = 'timeout = "20s"\nnotify_on_failure = false\nseverity = "low"',
    where: str = "plugins",
    body: str | None = None,
) -> Path:
    """Write ``<town>/<where>/<name>/plugin.md`` in Gas Town's layout (and ``run.sh`` unless None); returns the dir.

    ``gate=None`` leaves the ``[gate]`` table out altogether (a manual plugin in Gas Town).  ``run.sh``
    starts with ``set -euo pipefail`` like the shipped scripts, so a shim that exits non-zero where
    Gas Town's ``gt`` would not aborts the script and the test sees it.
    """
    directory = town / where / name
    directory.mkdir(parents=True, exist_ok=True)
    parts = [f'name = "{name}"', f'description = "{name}: a fixture plugin of the Gas Town tests"', "version = 1", ""]
    if gate is not None:
        parts += ["[gate]", gate, ""]
    parts += ["[tracking]", f'labels = ["plugin:{name}", "category:test"]', "digest = true", "", "[execution]", execution]
    text = "+++\n" + "\n".join(parts) + "\n+++\n\n" + (body if body is not None else f"# {name}\n\nRun `bash run.sh`.\n")
    (directory / "plugin.md").write_text(text, encoding="utf-8")
    if run_sh is not None:
        script = directory / "run.sh"
        script.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + run_sh, encoding="utf-8")
        script.chmod(0o755)
    return directory


PROBE = """# probe NAME CMD...: run CMD and keep its stdout, stderr and exit status apart in $OUT, for the test to read
probe() {
  local name=$1
  shift
  set +e
  "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
  echo $? >"$OUT/$name.rc"
  set -e
}
"""
"""A run.sh function the tests call their plugins' commands through (``$OUT`` set before it)."""
