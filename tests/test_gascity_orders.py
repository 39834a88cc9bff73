"""Order files and the layers of a city, as gc reads them (``internal/orders``, ``internal/orderdiscovery``).

The fixture cities are written here from the Go sources: packs imported by
the city (nested, by binding name), a pack imported by two rigs, a rig's own
``formulas_dir``, every override form, ``skip`` and ``skip_aliases``,
masks, the legacy layouts gc refuses.  What gtui makes of them is read
through the real ``gtui plugin list --json``, and, for the details, from
:func:`gtcore.gascity.layers.scan_city`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from citykit import bind_rigs, make_city, no_gc, order, pack
from enginekit import gtui
from hypothesis import given, settings
from hypothesis import strategies as st

from gtcore.gascity.city import CityError, derive_prefix, load_city
from gtcore.gascity.layers import scan_city
from gtcore.gascity.orderfile import Order, OrderFileError, go_quote, order_name, parse_order, validate

EXEC = 'exec = "true"\ntrigger = "manual"'


def listed(city: Path) -> dict[str, Any]:
    """``gtui plugin list --json`` of the city: its orders by key, and its invalid entries."""
    done = gtui(city, "plugin", "list", "--json")
    assert done.code == 0, done.err
    payload = done.json()
    return {"orders": {entry["name"]: entry for entry in payload["plugins"] if entry["kind"] == "order"},
            "invalid": payload["invalid"], "warnings": payload["warnings"]}


@pytest.fixture(autouse=True)
def without_gc(monkeypatch: pytest.MonkeyPatch) -> None:
    """These cities are read from their own files: no gc on PATH."""
    no_gc(monkeypatch)


# -- one file -------------------------------------------------------------------------------------------------------


def test_an_order_file_holds_every_field_and_its_name_is_its_file_name(tmp_path: Path) -> None:
    path = order(tmp_path / "orders", "digest", 'name = "ignored"\ndescription = "Daily digest"\nformula = "mol-digest"\n'
                 'scope = "city"\ngate = "cron"\nschedule = "0 6 * * *"\ntz = "Europe/Paris"\npool = "worker"\ntimeout = "90s"\n'
                 'check_timeout = "20s"\nenabled = true\nidempotent = true\nno_work_gate = true\nskip_aliases = ["old-digest"]\n'
                 'intervall = "5m"\n[order.params]\nrepo = { required = true }\nnote = {}\n')
    parsed = parse_order(path, "digest", "/packs/ops/formulas")
    assert isinstance(parsed, Order)
    assert (parsed.name, parsed.trigger, parsed.schedule, parsed.tz) == ("digest", "cron", "0 6 * * *", "Europe/Paris")
    assert parsed.pool == "worker"
    assert (parsed.scope, parsed.idempotent, parsed.no_work_gate, parsed.skip_aliases) == ("city", True, True, ("old-digest",))
    assert parsed.params == (("note", False), ("repo", True))
    assert parsed.timeout_ns == 90 * 10**9 and parsed.check_timeout_ns == 20 * 10**9
    assert parsed.warnings == ("unknown key 'name' in [order] (gc ignores it)",  # gc ignores them silently; gtui says so
                               "unknown key 'intervall' in [order] (gc ignores it)")
    assert validate(parsed) is None


def test_defaults_follow_gc(tmp_path: Path) -> None:
    """300s for exec, 30s for formula, 10s check_timeout; an unset or unparseable one falls back, as gc's helpers do."""
    assert parse_order(order(tmp_path, "a", 'exec = "x"'), "a", "").timeout_ns == 300 * 10**9  # type: ignore[union-attr]
    assert parse_order(order(tmp_path, "b", 'formula = "f"'), "b", "").timeout_ns == 30 * 10**9  # type: ignore[union-attr]
    assert parse_order(order(tmp_path, "c", 'exec = "x"\ncheck_timeout = "0s"'), "c", "").check_timeout_ns == 10 * 10**9  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "line", "reason"), [
    ('exec = "x"\ninterval = 5\n', 3, 'order "o" in {path}: parsing order: order.interval must be a string, not 5'),
    ('exec = "x"\nenabled = "no"\n', 3, 'order "o" in {path}: parsing order: order.enabled must be true or false, not \'no\''),
    ('exec = "x\n', 2, 'order "o" in {path}: parsing order: toml: Illegal character'),
    ('env = ["A"]\n', 2, 'order "o" in {path}: parsing order: order.env must be a table of strings'),
])
def test_a_file_gc_would_not_load_says_where_and_why(tmp_path: Path, body: str, line: int, reason: str) -> None:
    path = order(tmp_path, "o", body)
    parsed = parse_order(path, "o", "")
    assert isinstance(parsed, OrderFileError)
    assert parsed.reason.startswith(reason.format(path=path)) and parsed.line == line


@pytest.mark.parametrize(("fields", "message"), [
    ({"trigger": "manual"}, 'order "o": formula or exec is required'),
    ({"exec": "x", "formula": "f", "trigger": "manual"}, 'order "o": formula and exec are mutually exclusive'),
    ({"formula": "f", "env": (("A", "1"),), "trigger": "manual"}, 'order "o": env is supported only for exec orders'),
    ({"exec": "x", "pool": "p", "trigger": "manual"}, 'order "o": exec orders cannot have a pool'),
    ({"exec": "x", "env": ((" ", "1"),), "trigger": "manual"}, 'order "o": env key is required'),
    ({"exec": "x", "env": (("A=B", "1"),), "trigger": "manual"}, 'order "o": invalid env key "A=B": must not contain \'=\''),
    ({"exec": "x", "params": ((" ", True),), "trigger": "manual"}, 'order "o": param name is required'),
    ({"exec": "x", "scope": "town", "trigger": "manual"}, 'order "o": unknown scope "town" (want "city" or "rig")'),
    ({"exec": "x", "timeout": "5", "trigger": "manual"}, 'order "o": invalid timeout "5": time: missing unit in duration "5"'),
    ({"exec": "x", "check_timeout": "1d", "trigger": "manual"},
     'order "o": invalid check_timeout "1d": time: unknown unit "d" in duration "1d"'),
    ({"exec": "x", "check_timeout": "0s", "trigger": "manual"}, 'order "o": check_timeout "0s" must be a positive duration'),
    ({"exec": "x", "tz": "Mars/Base", "trigger": "manual"}, 'order "o": invalid tz "Mars/Base": unknown time zone Mars/Base'),
    ({"exec": "x", "trigger": "cooldown"}, 'order "o": cooldown trigger requires interval'),
    ({"exec": "x", "trigger": "cooldown", "interval": "1d"}, 'order "o": invalid interval "1d": time: unknown unit "d" in duration "1d"'),
    ({"exec": "x", "trigger": "cron"}, 'order "o": cron trigger requires schedule'),
    ({"exec": "x", "trigger": "condition"}, 'order "o": condition trigger requires check command'),
    ({"exec": "x", "trigger": "event"}, 'order "o": event trigger requires on (event type)'),
    ({"exec": "x", "trigger": "webhook"}, 'order "o": webhook trigger requires a non-empty [order.params]'),
    ({"exec": "x"}, 'order "o": trigger is required'),
    ({"exec": "x", "trigger": "hourly"}, 'order "o": unknown trigger type "hourly"'),
    ({"exec": "x", "trigger": "manual", "env": (("GC_CITY", "/x"),)},
     'order "o": [order.env] cannot override controller-owned env key "GC_CITY"'),
    ({"exec": "x", "trigger": "manual", "rig": "api", "env": (("PACK_DIR", "/x"),)},
     'order "o:rig:api": [order.env] cannot override controller-owned env key "PACK_DIR"'),
])
def test_validation_says_what_gc_says_in_gcs_order(fields: dict[str, Any], message: str) -> None:
    assert validate(Order("o", "/o.toml", "", **fields)) == message


def test_zero_and_negative_durations_pass_as_in_gc() -> None:
    """``interval = "0s"`` is due every tick; ``timeout = "-1s"`` kills at once: gc accepts both."""
    assert validate(Order("o", "", "", exec="x", trigger="cooldown", interval="0s", timeout="-1s")) is None


def test_file_names_name_orders() -> None:
    assert [order_name(name) for name in ("a.toml", "a.order.toml", ".toml", "a.toml.bak", "README.md")] == ["a", "a", "", None, None]


# -- layers ---------------------------------------------------------------------------------------------------------


def layered_city(tmp_path: Path) -> Path:
    """Two packs the city imports (``base`` imports ``common``), the city's own orders, a pack two rigs import, a rig's
    ``formulas_dir``: every layer gc scans, each order saying where it came from."""
    city = make_city(tmp_path / "city", '\n[imports.zeta]\nsource = "./packs/zeta"\n[imports.base]\nsource = "//packs/base"\n'
                     '\n[[rigs]]\nname = "web"\n[rigs.imports.ops]\nsource = "//packs/ops"\n'
                     '\n[[rigs]]\nname = "api"\nformulas_dir = "rigs-local/api/formulas"\n[rigs.imports.ops]\nsource = "packs/ops"\n'
                     '\n[orders]\nskip = ["skipped", "old-name"]\n')
    pack(city / "packs" / "common", "common")
    pack(city / "packs" / "base", "base", {"common": "../common"})
    pack(city / "packs" / "zeta", "zeta")
    pack(city / "packs" / "ops", "ops")
    order(city / "packs" / "common" / "orders", "layered", 'exec = "echo common"\ntrigger = "manual"')
    order(city / "packs" / "common" / "orders", "from-common", 'exec = "echo common"\ntrigger = "manual"\ndescription = "kept"')
    order(city / "packs" / "base" / "orders", "layered", 'exec = "echo base"\ntrigger = "cooldown"\ninterval = "1h"')
    order(city / "packs" / "zeta" / "orders", "layered", 'exec = "echo zeta"\ntrigger = "manual"\ndescription = "zeta"')
    order(city / "packs" / "zeta" / "orders", "masked", 'exec = "echo zeta"\ntrigger = "manual"')
    order(city / "packs" / "zeta" / "orders", "skipped", EXEC)
    order(city / "packs" / "zeta" / "orders", "aliased", f'{EXEC}\nskip_aliases = ["old-name"]')
    order(city / "orders", "masked", "enabled = false")
    order(city / "orders", "local", 'exec = "echo local"\ntrigger = "manual"')
    order(city / "orders", "twin", 'exec = "echo canonical"\ntrigger = "manual"')
    order(city / "orders", "twin", 'exec = "echo legacy infix"\ntrigger = "manual"', suffix=".order.toml")
    order(city / "orders", "infix", EXEC, suffix=".order.toml")
    order(city / "packs" / "ops" / "orders", "sweep", 'exec = "pwd"\ntrigger = "cooldown"\ninterval = "5m"')
    order(city / "packs" / "ops" / "orders", "once", f'{EXEC}\nscope = "city"')
    order(city / "packs" / "ops" / "orders", "local", f'{EXEC}\nscope = "city"')
    order(city / "rigs-local" / "api" / "orders", "api-only", 'exec = "echo api"\ntrigger = "manual"')
    bind_rigs(city, {"web": tmp_path / "src" / "web", "api": tmp_path / "src" / "api"})
    return city


def test_every_layer_and_its_priority(tmp_path: Path) -> None:
    orders = listed(layered_city(tmp_path))["orders"]
    assert set(orders) == {"layered", "from-common", "local", "twin", "infix", "once", "sweep@api", "sweep@web", "api-only@api"}
    city = tmp_path / "city"
    # zeta's binding sorts after base's: zeta is the higher layer, and its file replaced base's whole (no field merge)
    assert orders["layered"]["path"] == str(city / "packs/zeta/orders/layered.toml")
    assert orders["layered"]["gate"] == {"type": "manual"} and orders["layered"]["description"] == "zeta"
    assert orders["from-common"]["order"]["formula_layer"] == str(city / "packs/common/formulas")  # base's import came along
    assert orders["twin"]["order"]["exec"] == "echo canonical"  # x.toml beats x.order.toml
    assert orders["infix"]["path"] == str(city / "orders/infix.order.toml")
    assert orders["local"]["path"] == str(city / "orders/local.toml")  # a city order beats a pack's scope = "city" one
    assert orders["once"]["rig"] == "town" and orders["once"]["order"]["scoped_name"] == "once"  # promoted once, not per rig


def test_a_pack_order_in_two_rigs_is_one_order_per_rig(tmp_path: Path) -> None:
    orders = listed(layered_city(tmp_path))["orders"]
    for rig in ("api", "web"):
        shown = orders[f"sweep@{rig}"]
        assert (shown["rig"], shown["order"]["scoped_name"]) == (rig, f"sweep:rig:{rig}")
        assert shown["order"]["work_dir"] == str(tmp_path / "src" / rig)
    assert orders["api-only@api"]["order"]["formula_layer"] == str(tmp_path / "city/rigs-local/api/formulas")


def test_masks_skip_and_skip_aliases_remove_orders(tmp_path: Path) -> None:
    orders = listed(layered_city(tmp_path))["orders"]
    assert "masked" not in orders  # [order] enabled = false in the city's own file masks the pack's
    assert "skipped" not in orders
    assert "aliased" not in orders  # its skip_aliases names old-name, which [orders] skip lists


def test_overrides_target_city_orders_rigs_or_every_instance(tmp_path: Path) -> None:
    city = layered_city(tmp_path)
    with open(city / "city.toml", "a", encoding="utf-8") as handle:
        handle.write('\n[[orders.overrides]]\nname = "sweep"\nrig = "*"\ninterval = "2m"\n[orders.overrides.env]\nLEVEL = "all"\n'
                     '\n[[orders.overrides]]\nname = "sweep"\nrig = "web"\ngate = "cron"\nschedule = "*/10 * * * *"\n'
                     '[orders.overrides.env]\nEXTRA = "web"\n'
                     '\n[[orders.overrides]]\nname = "local"\nenabled = false\n'
                     '\n[[orders.overrides]]\nname = "sweep"\ninterval = "1m"\n'
                     '\n[[orders.overrides]]\nname = "nothing"\nrig = "*"\n'
                     '\n[[orders.overrides]]\nname = "sweep"\nrig = "mars"\n'
                     '\n[[orders.overrides]]\nname = "gone"\n'
                     '\n[[orders.overrides]]\nname = "masked"\nenabled = true\n')
    shown = listed(city)
    orders = shown["orders"]
    assert orders["sweep@api"]["gate"] == {"type": "cooldown", "duration": "2m"}
    assert orders["sweep@api"]["order"]["env"] == {"LEVEL": "all"}
    assert orders["sweep@web"]["gate"] == {"type": "cron", "schedule": "*/10 * * * *", "timezone": None}  # the gate alias, read as trigger
    assert orders["sweep@web"]["order"]["env"] == {"EXTRA": "web", "LEVEL": "all"}  # env merged key by key
    assert orders["local"]["enabled"] is False  # disabled by an override: listed, as gc order show lists it
    file = str(city / "city.toml")
    reasons = [entry["error"] for entry in shown["invalid"] if entry["path"] == file]
    assert reasons == [
        'orders.overrides[3]: order "sweep" not found at city scope (2 instances rig-scoped); set rig = "api", rig = "web" to target'
        ' a per-rig instance, or use rig = "*" to target all instances',
        'orders.overrides[4]: order "nothing" not found (rig "*" matches no instances)',
        'orders.overrides[5]: order "sweep" (rig "mars") not found',
        'orders.overrides[6]: order "gone" not found',
        'orders.overrides[7]: order "masked" not found',  # file-disabled orders are gone before overrides: none revives them
    ]
    lines = {entry["line"] for entry in shown["invalid"] if entry["path"] == file}
    assert None not in lines and len(lines) == 5


def test_the_legacy_layouts_are_refused_as_gc_refuses_them_and_the_rest_still_runs(tmp_path: Path) -> None:
    city = layered_city(tmp_path)
    order(city / "orders" / "old", "order", EXEC)
    order(city / "packs" / "zeta" / "formulas" / "orders" / "older", "order", EXEC)
    order(city / "packs" / "zeta" / "formulas" / "orders", "flat", EXEC)  # flat files there: neither loaded nor refused, as in gc
    shown = listed(city)
    legacy = sorted((entry["path"], entry["error"]) for entry in shown["invalid"] if "PackV1" in entry["error"])
    assert [(path, error.split("; ")[1].split(" (")[0]) for path, error in legacy] == [
        (str(city / "orders/old/order.toml"), "rename to orders/old.toml"),
        (str(city / "packs/zeta/formulas/orders/older/order.toml"), "move to orders/older.toml"),
    ]
    assert legacy[0][1].startswith(f"unsupported PackV1 order path {city / 'orders/old/order.toml'}; rename to orders/old.toml")
    assert "local" in shown["orders"] and "flat" not in shown["orders"]


def test_a_broken_file_is_listed_and_masks_what_it_meant_to_replace(tmp_path: Path) -> None:
    """gc would stop loading the city; gtui lists the file and runs every other order, but never the lower layer's copy."""
    city = layered_city(tmp_path)
    order(city / "orders", "layered", 'exec = "echo broken"\ntrigger = "manual"\ntimeout = 5')
    shown = listed(city)
    assert "layered" not in shown["orders"] and "local" in shown["orders"]
    assert [(entry["path"], entry["line"]) for entry in shown["invalid"] if "parsing order" in entry["error"]] == [
        (str(city / "orders/layered.toml"), 4)]


def test_the_workspace_timezone_is_stamped_and_a_bad_one_costs_only_the_cron_orders_that_use_it(tmp_path: Path) -> None:
    city = make_city(tmp_path / "city", 'timezone = "Asia/Tokyo"\n')
    order(city / "orders", "daily", 'exec = "x"\ntrigger = "cron"\nschedule = "0 3 * * *"')
    order(city / "orders", "own-zone", 'exec = "x"\ntrigger = "cron"\nschedule = "0 3 * * *"\ntz = "UTC"')
    order(city / "orders", "often", 'exec = "x"\ntrigger = "cooldown"\ninterval = "1m"')
    orders = listed(city)["orders"]
    assert orders["daily"]["gate"]["timezone"] == "Asia/Tokyo" and orders["own-zone"]["gate"]["timezone"] == "UTC"
    (city / "city.toml").write_text('[workspace]\nname = "city"\ntimezone = "Mars/Base"\n', encoding="utf-8")
    shown = listed(city)
    assert set(shown["orders"]) == {"own-zone", "often"}
    assert [entry["error"] for entry in shown["invalid"]] == [
        'order "daily": [workspace] timezone "Mars/Base": unknown time zone Mars/Base (gc dispatches no order of the city while it'
        " is so)"]


def test_a_broken_city_toml_is_one_invalid_entry_and_the_town_still_lists(tmp_path: Path) -> None:
    city = make_city(tmp_path / "city")
    (city / "city.toml").write_text('[workspace]\nname = "x"\n[orders]\nskip = "all"\n', encoding="utf-8")
    shown = listed(city)
    assert shown["orders"] == {}
    assert shown["invalid"] == [{"name": None, "path": str(city / "city.toml"), "line": None, "rig": "town",
                                 "error": "[orders] skip must be a list of strings, not 'all'"}]
    (city / "city.toml").write_text("[workspace\n", encoding="utf-8")
    assert listed(city)["invalid"][0]["line"] == 1


def test_names_gtui_cannot_key_are_listed_not_run(tmp_path: Path) -> None:
    city = make_city(tmp_path / "city", '\n[[rigs]]\nname = "web app"\n[rigs.imports.ops]\nsource = "//ops"\n')
    order(city / "orders", "Nightly", EXEC)
    pack(city / "ops", "ops")
    order(city / "ops" / "orders", "sweep", EXEC)
    bind_rigs(city, {"web app": tmp_path / "web"})
    errors = sorted(entry["error"] for entry in listed(city)["invalid"])
    assert errors[0].startswith('order name "Nightly" cannot be a gtui key')
    assert errors[1].startswith('rig name "web app" cannot be part of a gtui key')


def test_a_plugin_beats_an_order_of_the_same_name_which_it_shadows(tmp_path: Path) -> None:
    city = make_city(tmp_path / "city")
    order(city / "orders", "tidy", EXEC)
    (city / "plugins" / "tidy").mkdir(parents=True)
    (city / "plugins" / "tidy" / "plugin.md").write_text('+++\nname = "tidy"\n+++\nTidy up.\n', encoding="utf-8")
    payload = gtui(city, "plugin", "list", "--json").json()
    assert [(entry["name"], entry["kind"], entry["shadowed"]) for entry in payload["plugins"]] == [
        ("tidy", "plugin", [str(city / "orders" / "tidy.toml")])]


def test_a_local_pack_that_is_not_there_is_said(tmp_path: Path) -> None:
    city = make_city(tmp_path / "city", '\n[imports.gone]\nsource = "./packs/gone"\n')
    assert f"{city / 'city.toml'}: [imports.gone] (./packs/gone): {city / 'packs' / 'gone'} does not exist" in listed(city)["warnings"]


def test_a_remote_pack_without_gc_is_said_never_silently_dropped(tmp_path: Path) -> None:
    city = make_city(tmp_path / "city")
    (city / "pack.toml").write_text('[pack]\nname = "city"\nschema = 2\n[imports.core]\nsource = '
                                    '"https://github.com/gastownhall/gascity/tree/main/internal/bootstrap/packs/core"\n', encoding="utf-8")
    assert any("[imports.core] (https://github.com/gastownhall/gascity" in warning and "remote pack" in warning
               for warning in listed(city)["warnings"])


# -- city.toml bits ------------------------------------------------------------------------------------------------------


def test_city_toml_rigs_site_bindings_and_imports(tmp_path: Path) -> None:
    city = make_city(tmp_path / "city", 'prefix = "hq"\n\n[imports.shared]\nsource = "./from-city"\n'
                     '\n[[rigs]]\nname = "myFrontend"\npath = "legacy/path"\nsuspended = true\n'
                     '\n[[rigs]]\nname = "api-server-go"\nprefix = "as"\n\n[[rigs]]\nname = "unbound"\n')
    (city / "pack.toml").write_text('[pack]\nname = "c"\nschema = 2\n[imports.shared]\nsource = "./from-pack"\n'
                                    '[imports.extra]\nsource = "./extra"\n', encoding="utf-8")
    bind_rigs(city, {"api-server-go": tmp_path / "api"})
    loaded = load_city(city, {})
    assert loaded.prefix == "hq" and [item.binding for item in loaded.imports] == ["extra", "shared"]
    assert loaded.imports[1].source == "./from-city"  # city.toml wins a binding both name
    frontend, api, unbound = loaded.rigs
    assert (frontend.path, frontend.prefix, frontend.suspended) == (str(city / "legacy/path"), "mf", True)
    assert (api.path, api.prefix) == (str(tmp_path / "api"), "as")
    assert unbound.path == ""


@pytest.mark.parametrize(("name", "prefix"), [("my-frontend", "mf"), ("api_server", "as"), ("GasCity", "gc"), ("api-go", "api"),
                                               ("db", "db"), ("backend", "ba"), ("a-b-c", "abc"), ("", "")])
def test_bead_prefixes_are_derived_as_gc_derives_them(name: str, prefix: str) -> None:
    assert derive_prefix(name) == prefix


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_rig_name_derives_a_lowercase_prefix(name: str) -> None:
    assert derive_prefix(name) == derive_prefix(name).lower()


TEXT = st.characters(exclude_categories=["Cs"])  # TOML holds any character but a lone surrogate
TOML_VALUE = st.recursive(st.one_of(st.text(TEXT, max_size=8), st.integers(-5, 5), st.booleans()),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["name", "path", "source"]), inner,
                                                                                      max_size=3), max_leaves=8)


def toml_of(value: Any) -> str:
    """A TOML literal: JSON's string escapes are TOML's, but for DEL, which TOML wants escaped too."""
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["workspace", "orders", "rigs", "imports", "include", "other"]), TOML_VALUE, max_size=4))
def test_any_city_toml_loads_or_says_why(tmp_path_factory: pytest.TempPathFactory, document: dict[str, Any]) -> None:
    """Whatever the tables hold, loading the city is a City or a CityError naming the file; nothing else escapes."""
    root = tmp_path_factory.mktemp("city")
    text = "".join(f"{key} = {_inline(value)}\n" for key, value in document.items())
    (root / "city.toml").write_text(text, encoding="utf-8")
    try:
        load_city(root, {})
    except CityError as exc:
        assert str(exc).startswith(str(root))


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_of(key)} = {_inline(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(item) for item in value) + "]"
    return toml_of(value)


ORDER_FIELDS = st.fixed_dictionaries({}, optional={
    "description": st.text(TEXT, max_size=10), "exec": st.text(TEXT, min_size=1, max_size=10),
    "formula": st.text(TEXT, min_size=1, max_size=10),
    "trigger": st.sampled_from(["cooldown", "cron", "condition", "event", "manual", "webhook", "bogus"]),
    "interval": st.sampled_from(["5m", "0s", "1d", "60", "-1s"]), "schedule": st.text(TEXT, max_size=12),
    "tz": st.sampled_from(["UTC", "Bad/Zone"]), "check": st.text(TEXT, max_size=8), "on": st.text(TEXT, max_size=8),
    "timeout": st.sampled_from(["90s", "x"]), "enabled": st.booleans(),
    "env": st.dictionaries(st.text(TEXT, max_size=6), st.text(TEXT, max_size=6), max_size=2),
    "scope": st.sampled_from(["city", "rig", "town"]),
})


@settings(max_examples=200, deadline=None)
@given(ORDER_FIELDS)
def test_any_order_table_parses_back_to_what_it_says_and_validates_or_says_why(tmp_path_factory: pytest.TempPathFactory,
                                                                               fields: dict[str, Any]) -> None:
    directory = tmp_path_factory.mktemp("orders")
    path = order(directory, "o", "\n".join(f"{key} = {_inline(value)}" for key, value in fields.items() if key != "env"))
    if "env" in fields:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("[order.env]\n" + "".join(f"{toml_of(key)} = {toml_of(value)}\n" for key, value in fields["env"].items()))
    parsed = parse_order(path, "o", "")
    assert isinstance(parsed, Order)
    for key, value in fields.items():
        assert getattr(parsed, key) == (tuple(sorted(value.items())) if key == "env" else value)
    problem = validate(parsed)
    assert problem is None or problem.startswith(("order \"o\": ", 'order "o": [order.env]'))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_an_order_or_a_reason(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("orders") / "o.toml"
    path.write_bytes(raw)
    parsed = parse_order(path, "o", "")
    assert isinstance(parsed, Order) or parsed.reason.startswith(f"order {go_quote('o')} in {path}: ")


def test_scan_city_records_every_orders_directory_it_read(tmp_path: Path) -> None:
    city = layered_city(tmp_path)
    scanned = scan_city(load_city(city, {}))
    assert str(city / "orders") in scanned.roots and str(city / "packs/ops/orders") in scanned.roots
