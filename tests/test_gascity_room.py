"""One control room for both: a city's orders and the town's plugins in the same panes, each with its kind; a running
controller said in the header; and what a face that only looks at a city leaves behind (nothing, read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from citykit import Controller, event, events, make_city, no_gc, order
from enginekit import add_plugin, gtui, make_town
from tuikit import SIZE, app_for, cells, started

from gtcore.engine import Engine
from gtcore.town.layout import Town

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def city(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    no_gc(monkeypatch)
    root = make_city(tmp_path / "city")
    order(root / "orders", "sweep", 'exec = "true"\ntrigger = "manual"')
    order(root / "orders", "broken", 'trigger = "manual"')
    add_plugin(root, "tidy", gate='type = "manual"')  # a gtui plugin of the same town
    return root


def shown_columns(app, pane: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(key.value) for key in app.pane(pane).columns]


async def test_orders_and_plugins_share_the_plugins_pane_with_their_kind(city: Path) -> None:
    app = app_for(city, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert cells(app, "plugins", "sweep")[9] == "order" and cells(app, "plugins", "tidy")[9] == "plugin"
        assert cells(app, "plugins", "sweep")[8] == "manual trigger — use gc order run"
        broken = cells(app, "plugins", f"invalid:{city / 'orders' / 'broken.toml'}")
        assert (broken[0], broken[2], broken[9]) == ("broken.toml", "! invalid", "order")
        assert broken[8].endswith('order "broken": formula or exec is required')
        assert "kind" in shown_columns(app, "plugins")


async def test_a_town_without_orders_shows_no_kind_column(tmp_path: Path) -> None:
    town = make_town(tmp_path / "town")
    add_plugin(town, "tidy", gate='type = "manual"')
    app = app_for(town, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert cells(app, "plugins", "tidy")[9] == ""
        assert "kind" not in shown_columns(app, "plugins")


async def test_a_running_controller_is_in_the_header(city: Path) -> None:
    with Controller(city, pid=777, mode="supervisor"):
        app = app_for(city, live=False)
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            header = str(app.query_one("#header").render())
            assert "Gas City's controller (pid 777, supervisor) holds this lock" in header.replace("\n", " ")


def test_several_complaints_about_one_file_each_keep_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """city.toml's failing overrides: one row each, none hiding another."""
    from gtui.tui.state import Snapshot, plugin_rows

    no_gc(monkeypatch)
    root = make_city(tmp_path / "city", '\n[[orders.overrides]]\nname = "a"\n\n[[orders.overrides]]\nname = "b"\n')
    engine = Engine(Town.locate(root))
    rows = plugin_rows(Snapshot(0.0, plugin_set=engine.plugins()), 0.0)
    assert [key for key in rows if key.startswith("invalid:")] == [f"invalid:{root / 'city.toml'}", f"invalid:{root / 'city.toml'}#1"]


def test_a_face_watches_the_orders_directories_it_read(city: Path) -> None:
    engine = Engine(Town.locate(city))
    engine.plugins()
    assert city / "orders" in engine.plugin_directories() and city / "plugins" in engine.plugin_directories()


def test_a_read_only_look_at_a_city_writes_nothing(city: Path) -> None:
    order(city / "orders", "on-close", 'exec = "true"\ntrigger = "event"\non = "bead.closed"')
    events(city, event(1, "bead.closed"))
    assert gtui(city, "--read-only", "plugin", "list", "--json").code == 0
    assert gtui(city, "--read-only", "--once", "--json").code == 0
    assert not (city / ".gtui").exists()
    assert gtui(city, "plugin", "list", "--json").code == 0
    assert (city / ".gtui" / "gascity" / "events.json").is_file()  # a listing that may write keeps its place in the log
