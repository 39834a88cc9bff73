"""What an order's ``exec`` (and a condition's ``check``) sees: Gas City's environment, as gc's controller builds it.

The parent's environment without anything that looks like a secret or
that gc owns (``mergeRuntimeEnv``), then the order's own variables
(``orderExecEnvWithError``): ``GC_CITY``, ``GC_STORE_ROOT``, ``GC_RIG``,
``ORDER_DIR``, ``PACK_DIR``, ... and last its ``[order.env]``.  The working
directory is the city root for a city's order and the rig's path for a
rig's (never ``ORDER_DIR``).  Sources: ``cmd/gc/order_store.go``,
``cmd/gc/bd_env.go``, ``internal/execenv/execenv.go``.

gtui adds what every run of it carries (``GT_RUN_ID``, ``GTUI_RUN_TOKEN``,
...) so a run can be followed, reported on and ended whole; and leaves out
its plugin-facing ``gt`` and ``bd`` (``<town>/.gtui/bin``), which would
stand in for the real ``bd`` that ``gc bd`` calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gtcore.gascity.orderfile import Order

SENSITIVE = ("PASSWORD", "TOKEN", "SECRET", "PRIVATE_KEY", "PRIVATE-KEY", "API_KEY", "API-KEY", "ACCESS_KEY", "ACCESS-KEY",
             "CREDENTIAL", "OAUTH", "AUTH_JSON", "AUTH-JSON")
OWNED = frozenset({
    "BEADS_CREDENTIALS_FILE", "BEADS_BACKEND", "BEADS_DIR", "BEADS_DOLT_AUTO_START", "BEADS_DOLT_PASSWORD", "BEADS_DOLT_SERVER_HOST",
    "BEADS_DOLT_SERVER_PORT", "BEADS_DOLT_SERVER_USER", "GC_CITY", "GC_CITY_ROOT", "GC_CITY_PATH", "GC_CITY_RUNTIME_DIR",
    "GC_BEADS_BACKEND", "GC_DOLT", "GC_DOLT_CONFIG_FILE", "GC_DOLT_DATA_DIR", "GC_DOLT_HOST", "GC_DOLT_LOCK_FILE", "GC_DOLT_LOG_FILE",
    "GC_DOLT_MANAGED_LOCAL", "GC_DOLT_PASSWORD", "GC_DOLT_PID_FILE", "GC_DOLT_PORT", "GC_DOLT_STATE_FILE", "GC_DOLT_USER",
    "GC_PACK_STATE_DIR", "GC_RIG", "GC_RIG_ROOT", "BD_DOLT_SYNC_CLI_REMOTES", "BEADS_DOLT_SYNC_CLI_REMOTES", "BD_BACKUP_ENABLED",
    "BEADS_BACKUP_ENABLED", "BD_ROUTING_MODE", "BEADS_ROUTING_MODE"})
KEPT = ("BEADS_DOLT_CREDENTIAL_COMMAND", "BEADS_DOLT_SERVER_TLS", "ORCHESTRATOR_KEY_FILE", "EIA_AUDIENCE", "EIA_SCOPES",
        "STS_MACHINE_URL", "STS_TOKEN_URL")  # preserveHostedBeadsCredentialEnv: hosted beads need them, secret-looking or not
GITHUB = ("GH_TOKEN", "GITHUB_TOKEN")


def sensitive(key: str) -> bool:
    """``IsSensitiveKey``: the name holds one of the markers, in any case."""
    upper = key.strip().upper()
    return bool(upper) and any(marker in upper for marker in SENSITIVE)


def inherited(parent: Mapping[str, str], hidden_bin: str) -> dict[str, str]:
    """The parent's environment as an order gets it: secrets and gc-owned keys dropped, hosted-beads credentials kept, and
    ``hidden_bin`` (gtui's plugin-facing ``gt``/``bd``) taken off ``PATH``."""
    kept = {key: value for key, value in parent.items() if not sensitive(key) and key not in OWNED}
    kept.update({key: parent[key] for key in KEPT if key in parent})
    if "PATH" in kept:
        kept["PATH"] = os.pathsep.join(part for part in kept["PATH"].split(os.pathsep) if part and part != hidden_bin)
    return kept


def order_variables(order: Order, city: Path, scope_root: str, prefix: str, parent: Mapping[str, str]) -> dict[str, str]:
    """The variables gc sets for an order (``orderExecEnvWithError``), ``[order.env]`` last."""
    runtime = _runtime_dir(city, parent)
    rig_target = bool(order.rig) and scope_root != str(city)
    env = {
        "GC_CITY": str(city), "GC_CITY_PATH": str(city), "GC_CITY_RUNTIME_DIR": runtime,
        "GC_CONTROL_DISPATCHER_TRACE_DEFAULT": os.path.join(runtime, "control-dispatcher-trace.log"),
        "BEADS_DIR": os.path.join(scope_root, ".beads"), "BEADS_DOLT_AUTO_START": "0", "BD_EXPORT_AUTO": "false",
        "BD_ROUTING_MODE": "off", "BEADS_ROUTING_MODE": "off", "BD_DOLT_SYNC_CLI_REMOTES": "false", "BEADS_DOLT_SYNC_CLI_REMOTES": "false",
        "BD_BACKUP_ENABLED": "false", "BEADS_BACKUP_ENABLED": "false",
        "GC_STORE_ROOT": scope_root, "GC_STORE_SCOPE": "rig" if rig_target else "city", "GC_BEADS_PREFIX": prefix,
        "GC_RIG": order.rig, "GC_RIG_ROOT": scope_root if rig_target else "",
        "ORDER_DIR": os.path.dirname(order.source),
    }
    if order.name.strip():
        env["BEADS_ACTOR"] = f"order:{order.name.strip()}"
    if order.formula_layer:
        pack = os.path.dirname(order.formula_layer)
        env["PACK_DIR"] = env["GC_PACK_DIR"] = pack
        name = os.path.basename(pack)
        if name not in ("", ".", os.sep):
            env["GC_PACK_NAME"] = name
            env["GC_PACK_STATE_DIR"] = str(city / ".gc" / "runtime" / "packs" / name)
    env.update({key: parent[key] for key in GITHUB if parent.get(key)})
    env.update(dict(order.env))
    return env


def _runtime_dir(city: Path, parent: Mapping[str, str]) -> str:
    """``<city>/.gc/runtime``, or the ambient ``GC_CITY_RUNTIME_DIR`` when gtui's own environment is anchored to this city."""
    ambient = parent.get("GC_CITY_RUNTIME_DIR", "").strip()
    anchored = any(_same(parent.get(key, ""), city) for key in ("GC_CITY", "GC_CITY_PATH", "GC_CITY_ROOT"))
    return ambient if ambient and anchored else str(city / ".gc" / "runtime")


def _same(value: str, city: Path) -> bool:
    if not value.strip():
        return False
    try:
        return Path(value.strip()).resolve() == city.resolve()
    except OSError:
        return False


def environment(order: Order, city: Path, scope_root: str, prefix: str, parent: Mapping[str, str], hidden_bin: str,
                own: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of an order's process: inherited, gc's variables, then gtui's own run variables (``own``)."""
    return {**inherited(parent, hidden_bin), **order_variables(order, city, scope_root, prefix, parent), **own}
