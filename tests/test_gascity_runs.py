"""Running a city's orders through the real ``gtui`` and its kennel: what a run sees, where it runs, how it ends.

Each order here is a real ``sh -c`` that writes down what it saw; the
expected environment is gc's (``cmd/gc/order_store.go``
``orderExecEnvWithError``, ``cmd/gc/bd_env.go``, ``internal/execenv``).
Also: the city found as gc finds it, gtui.toml's ``[orders.<name>]``, and a
running controller said where an operator looks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from citykit import Controller, bind_rigs, make_city, no_gc, order, pack
from enginekit import Result, gtui, gtui_env

from gtcore.core.errors import NotFound
from gtcore.engine import Engine
from gtcore.town.layout import Town


@pytest.fixture
def city(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    no_gc(monkeypatch)
    return make_city(tmp_path / "gas-city", '\n[[rigs]]\nname = "api"\n[rigs.imports.ops]\nsource = "//packs/ops"\n')


def seen(path: Path) -> dict[str, str]:
    """The environment an order wrote with ``env -0``."""
    return dict(item.split("=", 1) for item in path.read_text(encoding="utf-8").split("\0") if "=" in item)


WRITE = 'env -0 > "$GC_CITY/{name}.env"; pwd > "$GC_CITY/{name}.pwd"'


def test_an_exec_order_runs_as_sh_c_in_the_city_root_with_gas_citys_environment(city: Path, tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_TOKEN", "hunter2")  # a secret of the kennel's environment: gc strips it, so does gtui
    monkeypatch.setenv("GH_TOKEN", "gh-kept")  # re-projected, as gc does for gh
    monkeypatch.setenv("GC_DOLT_HOST", "stale-host")  # gc's own key: never inherited
    monkeypatch.setenv("BEADS_DOLT_SERVER_TLS", "1")  # hosted beads: kept
    monkeypatch.setenv("PATH", f"{city / '.gtui' / 'bin'}:{os.environ['PATH']}")  # a kennel started from inside a plugin's run
    order(city / "orders", "probe", f"exec = '{WRITE.format(name='city')}'\ntrigger = \"manual\"\n[order.env]\nTHRESHOLD = \"7\"")
    bind_rigs(city, {"api": tmp_path / "src" / "api"})
    done = gtui(city, "plugin", "run", "probe", "--json")
    assert (done.code, done.json()["result"]) == (0, "success"), done.err
    env = seen(city / "city.env")
    root = str(city)
    assert (city / "city.pwd").read_text(encoding="utf-8").strip() == root  # the city root, not ORDER_DIR
    assert {key: env.get(key) for key in ("GC_CITY", "GC_CITY_PATH", "GC_STORE_ROOT", "GC_STORE_SCOPE", "GC_RIG", "GC_RIG_ROOT",
                                          "ORDER_DIR", "PACK_DIR", "GC_PACK_DIR", "GC_PACK_NAME", "GC_PACK_STATE_DIR",
                                          "GC_CITY_RUNTIME_DIR", "BEADS_DIR", "BEADS_ACTOR", "GC_BEADS_PREFIX", "THRESHOLD")} == {
        "GC_CITY": root, "GC_CITY_PATH": root, "GC_STORE_ROOT": root, "GC_STORE_SCOPE": "city", "GC_RIG": "", "GC_RIG_ROOT": "",
        "ORDER_DIR": f"{root}/orders", "PACK_DIR": root, "GC_PACK_DIR": root, "GC_PACK_NAME": "gas-city",
        "GC_PACK_STATE_DIR": f"{root}/.gc/runtime/packs/gas-city", "GC_CITY_RUNTIME_DIR": f"{root}/.gc/runtime",
        "BEADS_DIR": f"{root}/.beads", "BEADS_ACTOR": "order:probe", "GC_BEADS_PREFIX": "gc", "THRESHOLD": "7"}
    assert (env["BD_EXPORT_AUTO"], env["BEADS_DOLT_AUTO_START"], env["BD_ROUTING_MODE"]) == ("false", "0", "off")
    assert "MY_API_TOKEN" not in env and "GC_DOLT_HOST" not in env and "GC_CITY_ROOT" not in env
    assert (env["GH_TOKEN"], env["BEADS_DOLT_SERVER_TLS"]) == ("gh-kept", "1")
    assert env["GTUI_RUN_TOKEN"] and env["GT_RUN_ID"].startswith("run-") and env["GT_PLUGIN"] == "probe"
    assert str(city / ".gtui" / "bin") not in env["PATH"].split(":")  # gtui's gt and bd would stand in for the real bd


def test_a_pack_order_in_a_rig_runs_in_the_rigs_path_with_the_packs_variables(city: Path, tmp_path: Path) -> None:
    pack(city / "packs" / "ops", "ops")
    order(city / "packs" / "ops" / "orders", "probe", f"exec = '{WRITE.format(name='rig')}'\ntrigger = \"manual\"")
    bind_rigs(city, {"api": tmp_path / "src" / "api"})
    done = gtui(city, "plugin", "run", "probe@api", "--json")
    assert done.json()["result"] == "success", done.err
    env, rig = seen(city / "rig.env"), str(tmp_path / "src" / "api")
    assert (city / "rig.pwd").read_text(encoding="utf-8").strip() == rig
    assert {key: env[key] for key in ("GC_RIG", "GC_RIG_ROOT", "GC_STORE_ROOT", "GC_STORE_SCOPE", "PACK_DIR", "GC_PACK_NAME",
                                      "ORDER_DIR", "BEADS_DIR", "GC_BEADS_PREFIX", "BEADS_ACTOR")} == {
        "GC_RIG": "api", "GC_RIG_ROOT": rig, "GC_STORE_ROOT": rig, "GC_STORE_SCOPE": "rig", "PACK_DIR": str(city / "packs/ops"),
        "GC_PACK_NAME": "ops", "ORDER_DIR": str(city / "packs/ops/orders"), "BEADS_DIR": f"{rig}/.beads", "GC_BEADS_PREFIX": "api",
        "BEADS_ACTOR": "order:probe"}


def test_the_runtime_dir_is_gtuis_own_unless_its_environment_is_anchored_to_this_city(tmp_path: Path) -> None:
    """gc's ``TrustedAmbientCityRuntimeDir``: an ambient GC_CITY_RUNTIME_DIR counts only beside a GC_CITY naming this city."""
    from gtcore.gascity.env import order_variables
    from gtcore.gascity.orderfile import Order

    city = make_city(tmp_path / "city")
    probe = Order("probe", str(city / "orders/probe.toml"), str(city / "formulas"), exec="true")
    ambient = {"GC_CITY_RUNTIME_DIR": "/run/gc"}
    assert order_variables(probe, city, str(city), "c", ambient)["GC_CITY_RUNTIME_DIR"] == str(city / ".gc" / "runtime")
    anchored = {**ambient, "GC_CITY_PATH": str(city)}
    assert order_variables(probe, city, str(city), "c", anchored)["GC_CITY_RUNTIME_DIR"] == "/run/gc"
    elsewhere = {**ambient, "GC_CITY": str(tmp_path)}
    assert order_variables(probe, city, str(city), "c", elsewhere)["GC_CITY_RUNTIME_DIR"] == str(city / ".gc" / "runtime")


def test_the_timeout_defaults_to_300s_and_max_timeout_caps_it(city: Path) -> None:
    order(city / "orders", "slow", 'exec = "sleep 30"\ntrigger = "manual"')
    order(city / "orders", "quick", 'exec = "true"\ntrigger = "manual"\ntimeout = "45s"')
    listed = {entry["name"]: entry for entry in gtui(city, "plugin", "list", "--json").json()["plugins"]}
    assert (listed["slow"]["execution"]["timeout"], listed["quick"]["execution"]["timeout"]) == ("5m0s", "45s")
    with open(city / "city.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[orders]\nmax_timeout = "200ms"\n')
    done = gtui(city, "plugin", "run", "slow", "--json")
    assert (done.code, done.json()["result"], done.json()["reason"]) == (1, "timeout", "ran past its timeout of 200ms")


def test_severity_and_notify_on_failure_come_from_gtui_toml(city: Path) -> None:
    (city / "settings" / "gtui.toml").write_text('dogs = 2\nkill_grace = "1s"\n[orders.failing]\nseverity = "HIGH"\n'
                                                  'notify_on_failure = true\ndigest = true\n', encoding="utf-8")
    order(city / "orders", "failing", 'exec = "echo broke; exit 3"\ntrigger = "manual"')
    order(city / "orders", "quiet", 'exec = "exit 4"\ntrigger = "manual"')
    shown = gtui(city, "plugin", "show", "failing", "--json").json()
    assert (shown["execution"]["severity"], shown["execution"]["notify_on_failure"], shown["tracking"]["digest"]) == ("high", True, True)
    assert gtui(city, "plugin", "run", "failing", "--json").json()["reason"] == "exited 3"
    assert gtui(city, "plugin", "run", "quiet", "--json").json()["result"] == "failure"
    escalations = gtui(city, "escalate", "list", "--json").json()["escalations"]
    assert [(item["severity"], item["source"]) for item in escalations] == [("high", "plugin:failing")]


def test_order_settings_are_checked_like_every_setting(city: Path) -> None:
    settings = city / "settings" / "gtui.toml"
    settings.write_text('[orders.x]\nseverity = "urgent"\n', encoding="utf-8")
    done = gtui(city, "--once", "--json")
    assert done.code == 2 and f"{settings}: field 'orders.x.severity' must be one of low, medium, high, critical" in done.err
    settings.write_text('[orders.x]\nnotify_on_failure = "yes"\n', encoding="utf-8")
    assert "field 'orders.x.notify_on_failure' must be true or false" in gtui(city, "--once").err
    settings.write_text('[orders.x]\ndigest = 1\n', encoding="utf-8")
    assert "field 'orders.x.digest' must be true or false" in gtui(city, "--once").err
    settings.write_text('orders = 3\n', encoding="utf-8")
    assert "field 'orders' must be tables like [orders.gate-sweep]" in gtui(city, "--once").err
    settings.write_text('[orders.x]\nseverty = "high"\n', encoding="utf-8")
    problems = gtui(city, "--once", "--json").json()["problems"]
    assert {"file": str(settings), "field": "orders.x.severty", "level": "warning",
            "reason": "is not a setting gtui knows; it is ignored (did you mean 'orders.x.severity'?)"} in problems


def test_an_order_with_required_params_is_skipped_with_the_reason(city: Path) -> None:
    order(city / "orders", "hook", 'exec = "true"\ntrigger = "webhook"\n[order.params]\nrepo = { required = true }\nref = {}')
    done = gtui(city, "plugin", "run", "hook", "--json")
    assert (done.code, done.json()["result"]) == (0, "skipped")
    assert done.json()["reason"] == 'order "hook": missing required param(s): repo (gtui passes none)'


def run_gtui(args: list[str], cwd: Path, **env: str) -> Result:
    """``gtui`` with no ``--town``: the town as it is found."""
    done = subprocess.run([sys.executable, "-m", "gtui", *args], capture_output=True, text=True, cwd=cwd, timeout=60,
                          env={**gtui_env(), **env})
    return Result(done.returncode, done.stdout, done.stderr)


def test_the_city_is_found_as_gc_finds_it(city: Path, tmp_path: Path) -> None:
    order(city / "orders", "hello", 'exec = "true"\ntrigger = "manual"')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for variable in ("GC_CITY", "GC_CITY_PATH", "GC_CITY_ROOT"):
        assert run_gtui(["plugin", "list", "--json"], elsewhere, **{variable: str(city)}).json()["town"] == str(city)
    inside = city / "orders"
    assert run_gtui(["plugin", "list", "--json"], inside).json()["town"] == str(city)
    assert run_gtui(["plugin", "list", "--json"], elsewhere, GC_DIR=str(inside)).json()["town"] == str(city)
    assert run_gtui(["plugin", "list", "--json"], elsewhere, GC_CITY=str(elsewhere)).code == 2  # no city.toml there: not a city
    # a variable naming no city is passed over for the next, as gc passes it over
    assert run_gtui(["plugin", "list", "--json"], elsewhere, GC_CITY=str(elsewhere), GC_CITY_PATH=str(city)).json()["town"] == str(city)


def found_from(start: Path, environ: dict[str, str]) -> Path | None:
    try:
        return Town.locate(cwd=start, environ=environ).root
    except NotFound:
        return None  # nothing found, and no ~/gt either


def test_the_walk_up_stops_at_gcs_ceilings_for_a_city_but_not_for_a_town(tmp_path: Path) -> None:
    top = make_city(tmp_path / "top").resolve()
    deep = top / "home" / "me" / "work"
    deep.mkdir(parents=True)
    assert found_from(deep, {"HOME": str(top / "home" / "me")}) != top
    assert found_from(deep, {"HOME": "/nonexistent"}) == top
    ceiling = {"HOME": "/nonexistent", "GC_CEILING_DIRECTORIES": f"/x:{top / 'home'}"}
    assert found_from(deep, ceiling) != top
    (top / "mayor").mkdir()
    (top / "mayor" / "town.json").write_text("{}", encoding="utf-8")
    assert found_from(deep, ceiling) == top  # Gas Town's walk has no ceiling


def test_a_running_controller_is_said_in_once_problems_and_the_control_room_header(city: Path) -> None:
    order(city / "orders", "hello", 'exec = "true"\ntrigger = "manual"')
    assert not [problem for problem in gtui(city, "--once", "--json").json()["problems"] if "controller" in problem["reason"]]
    with Controller(city):
        problems = [problem for problem in gtui(city, "--once", "--json").json()["problems"] if "controller" in problem["reason"]]
        engine = Engine(Town.locate(city), readonly=True)
        notices = [str(notice) for notice in engine.notices()]
        engine.ledger.close()
    assert [(problem["file"], problem["level"]) for problem in problems] == [(str(city / ".gc" / "controller.lock"), "warning")]
    assert problems[0]["reason"].startswith("Gas City's controller (pid 4242, standalone) holds this lock: it dispatches the city's"
                                            " orders every 30s on its own")
    assert notices == [f"{city / '.gc' / 'controller.lock'}: {problems[0]['reason']}"]
    assert not Town.locate(city).controller_problem()  # let go: gone
