"""Discovery as DESIGN.md fixes it: where plugins live, which rigs exist, and who wins a name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gtcore.core.errors import GtError, NotFound
from gtcore.plugins.discovery import CREW_CLONE, RIG_ROOT, TOWN_LEVEL, Candidate, discover, scan_entries
from gtcore.town.layout import Town

MakePlugin = Callable[..., Path]


@pytest.fixture
def add(town: Path, make_plugin: MakePlugin) -> Callable[..., Path]:
    """``add("alpha/plugins/x", "name")``: a valid manual plugin at that place in the town."""

    def add(where: str, name: str | None = None, extra: str = "") -> Path:
        plugin_name = name or Path(where).name
        return make_plugin(town / where, f'name = "{plugin_name}"\n{extra}\n[gate]\ntype = "manual"', f"Run {plugin_name}.\n")

    return add


def write_registry(town: Path, data: object) -> Path:
    path = town / "mayor" / "rigs.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def relative(town: Path, paths: list[Path]) -> list[str]:
    return [str(path.relative_to(town)) for path in paths]


# -- where plugins are found --------------------------------------------------------------


def test_town_level_plugins(town: Path, add: Callable[..., Path]) -> None:
    add("plugins/beta")
    add("plugins/alpha")
    found = discover(Town(town))
    assert [(p.name, p.rig, p.crew) for p in found.plugins] == [("alpha", "town", None), ("beta", "town", None)]
    assert found.invalid == [] and found.warnings == []


def test_empty_town_has_no_plugins(town: Path) -> None:
    found = discover(Town(town))
    assert (found.plugins, found.invalid, found.warnings) == ([], [], [])


def test_rig_and_crew_clone_plugins(town: Path, add: Callable[..., Path]) -> None:
    add("alpha/plugins/deploy")
    add("alpha/crew/bob/plugins/lint")
    found = discover(Town(town))
    assert [(p.name, p.rig, p.crew) for p in found.plugins] == [("deploy", "alpha", None), ("lint", "alpha", "bob")]


def test_directories_without_plugin_md_and_stray_files_are_ignored(town: Path, add: Callable[..., Path]) -> None:
    add("plugins/real")
    (town / "plugins" / "empty-dir").mkdir()
    (town / "plugins" / "README.md").write_text("not a plugin")
    (town / "plugins" / "notes" / "docs").mkdir(parents=True)
    assert [p.name for p in discover(Town(town)).plugins] == ["real"]


def test_dot_directories_are_skipped_everywhere(town: Path, add: Callable[..., Path]) -> None:
    add("plugins/.disabled")
    add("plugins/visible")
    add("alpha/plugins/.git")
    add("alpha/crew/.cache/plugins/hidden-clone")
    add("alpha/crew/bob/plugins/.swap")
    add(".trash/plugins/hidden-rig")
    found = discover(Town(town))
    assert [p.name for p in found.plugins] == ["visible"]
    assert found.invalid == []
    assert Town(town).rigs() == ["alpha"]


def test_candidates_in_discovery_order(town: Path, add: Callable[..., Path]) -> None:
    add("beta/plugins/b2")
    add("beta/plugins/b1")
    add("alpha/crew/zed/plugins/z1")
    add("alpha/crew/amy/plugins/a2")
    add("alpha/crew/amy/plugins/a1")
    add("alpha/plugins/r1")
    add("plugins/t2")
    add("plugins/t1")
    candidates = [entry for entry in scan_entries(Town(town)) if type(entry) is Candidate]  # the files parsed, in order
    assert [(str(Path(c.path).parent.relative_to(town)), c.rig, c.rank, c.crew) for c in candidates] == [
        ("plugins/t1", "town", TOWN_LEVEL, None),
        ("plugins/t2", "town", TOWN_LEVEL, None),
        ("alpha/plugins/r1", "alpha", RIG_ROOT, None),
        ("alpha/crew/amy/plugins/a1", "alpha", CREW_CLONE, "amy"),
        ("alpha/crew/amy/plugins/a2", "alpha", CREW_CLONE, "amy"),
        ("alpha/crew/zed/plugins/z1", "alpha", CREW_CLONE, "zed"),
        ("beta/plugins/b1", "beta", RIG_ROOT, None),
        ("beta/plugins/b2", "beta", RIG_ROOT, None),
    ]
    assert all(isinstance(c, Candidate) and c.path.endswith("/plugin.md") for c in candidates)
    assert [p.name for p in discover(Town(town)).plugins] == ["t1", "t2", "r1", "a1", "a2", "z1", "b1", "b2"]


# -- which directories are rigs -----------------------------------------------------------


def test_rigs_by_looking_when_there_is_no_registry(town: Path, add: Callable[..., Path]) -> None:
    add("zulu/plugins/z")
    add("alpha/crew/bob/plugins/b")
    (town / "docs" / "sub").mkdir(parents=True)
    (town / "emptyrig" / "plugins").mkdir(parents=True)
    (town / "crewless" / "crew" / "bob").mkdir(parents=True)
    (town / "afile").write_text("x")
    add(".hidden/plugins/h")
    assert Town(town).rigs() == ["alpha", "emptyrig", "zulu"]


def test_a_rig_whose_only_clone_is_a_dot_directory_is_not_a_rig(town: Path, add: Callable[..., Path]) -> None:
    add("alpha/crew/.backup/plugins/b")
    assert Town(town).rigs() == []


def test_town_plugin_dir_is_never_a_rig_even_with_a_plugin_called_plugins(town: Path, add: Callable[..., Path]) -> None:
    add("plugins/plugins")
    add("plugins/plugins/nested")  # would be found as rig "plugins" if the town's plugin dir were mistaken for a rig
    assert Town(town).rigs() == []
    found = discover(Town(town))
    assert [(p.name, p.rig) for p in found.plugins] == [("plugins", "town")]


@pytest.mark.parametrize(
    "registry",
    [
        {"beta": {"git_url": "x"}, "alpha": {}},
        {"version": 1, "rigs": {"beta": {"added_at": "2025-01-01"}, "alpha": {}}},
        {"rigs": ["beta", "alpha"]},
        {"rigs": [{"name": "beta"}, {"name": "alpha"}]},
        ["beta", "alpha"],
    ],
    ids=["object-keys", "rigs-object", "rigs-list", "rigs-list-of-objects", "top-level-list"],
)
def test_rigs_from_registry_in_registry_order(town: Path, add: Callable[..., Path], registry: object) -> None:
    write_registry(town, registry)
    add("alpha/plugins/a")
    add("beta/plugins/b")
    add("gamma/plugins/g")  # not registered: not scanned
    assert Town(town).rigs() == ["beta", "alpha"]
    assert [(p.name, p.rig) for p in discover(Town(town)).plugins] == [("b", "beta"), ("a", "alpha")]


def test_registered_rig_without_a_directory_is_harmless(town: Path, add: Callable[..., Path]) -> None:
    write_registry(town, {"rigs": {"ghost": {}, "alpha": {}}})
    add("alpha/plugins/a")
    (town / "ghost-file").write_text("x")
    assert [p.name for p in discover(Town(town)).plugins] == ["a"]


def test_a_rig_listed_twice_is_scanned_once(town: Path, add: Callable[..., Path]) -> None:
    write_registry(town, {"rigs": ["alpha", "alpha"]})
    add("alpha/plugins/a")
    assert Town(town).rigs() == ["alpha"]
    (plugin,) = discover(Town(town)).plugins
    assert plugin.shadowed == ()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read the rig list: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ("", "cannot read the rig list: Expecting value: line 1 column 1 (char 0)"),
        ("42", "the rig list must be a JSON object or list, not int"),
        ('{"rigs": null}', "the rig list must be a JSON object or list, not NoneType"),
        ('{"rigs": ["ok", "../escape"]}', "'../escape' is not a rig name"),
        ('{"rigs": [".hidden"]}', "'.hidden' is not a rig name"),
        ('{"rigs": [""]}', "'' is not a rig name"),
        ('{"rigs": [7]}', "7 is not a rig name"),
        ('{"rigs": [{"path": "x"}]}', "None is not a rig name"),
    ],
)
def test_broken_registry_is_a_clear_error(town: Path, content: str, message: str) -> None:
    path = town / "mayor" / "rigs.json"
    path.parent.mkdir()
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GtError) as caught:
        discover(Town(town))
    assert str(caught.value) == f"{path}: {message}"
    assert "\n" not in str(caught.value)


def test_unreadable_registry_is_a_clear_error(town: Path) -> None:
    (town / "mayor" / "rigs.json").mkdir(parents=True)
    with pytest.raises(GtError, match=r"rigs\.json: cannot read the rig list: \[Errno 21\] Is a directory"):
        Town(town).rigs()


# -- dedupe by name -----------------------------------------------------------------------


def test_rig_root_beats_crew_clone_beats_town(town: Path, add: Callable[..., Path]) -> None:
    town_copy = add("plugins/deploy")
    crew_copy = add("alpha/crew/bob/plugins/deploy")
    rig_copy = add("alpha/plugins/deploy")
    found = discover(Town(town))
    (winner,) = found.plugins
    assert winner.path == rig_copy
    assert (winner.rig, winner.crew) == ("alpha", None)
    assert winner.shadowed == (crew_copy, town_copy)


def test_crew_clone_beats_town(town: Path, add: Callable[..., Path]) -> None:
    town_copy = add("plugins/deploy")
    crew_copy = add("alpha/crew/bob/plugins/deploy")
    (winner,) = discover(Town(town)).plugins
    assert (winner.path, winner.crew, winner.shadowed) == (crew_copy, "bob", (town_copy,))


def test_any_rig_root_beats_a_crew_clone_of_an_earlier_rig(town: Path, add: Callable[..., Path]) -> None:
    crew_copy = add("alpha/crew/bob/plugins/deploy")
    rig_copy = add("beta/plugins/deploy")
    (winner,) = discover(Town(town)).plugins
    assert (winner.path, winner.shadowed) == (rig_copy, (crew_copy,))


def test_between_equals_the_first_found_wins(town: Path, add: Callable[..., Path]) -> None:
    write_registry(town, {"rigs": ["beta", "alpha"]})
    alpha_copy = add("alpha/plugins/deploy")
    beta_copy = add("beta/plugins/deploy")
    amy = add("alpha/crew/amy/plugins/lint")
    zed = add("alpha/crew/zed/plugins/lint")
    found = discover(Town(town))
    deploy, lint = found.get("deploy"), found.get("lint")
    assert deploy is not None and lint is not None
    assert (deploy.path, deploy.shadowed) == (beta_copy, (alpha_copy,))
    assert (lint.path, lint.shadowed) == (amy, (zed,))


def test_names_are_unique_and_winners_keep_discovery_order(town: Path, add: Callable[..., Path]) -> None:
    add("plugins/aaa")
    add("plugins/deploy")
    add("plugins/zzz")
    add("alpha/plugins/deploy")
    names = [p.name for p in discover(Town(town)).plugins]
    assert names == ["aaa", "zzz", "deploy"]


def test_shadowed_copies_can_come_from_a_differently_named_directory(town: Path, add: Callable[..., Path]) -> None:
    town_copy = add("plugins/old-dir-name", name="deploy")
    rig_copy = add("alpha/plugins/deploy")
    found = discover(Town(town))
    assert found.get("deploy") is not None and found.get("deploy").path == rig_copy
    assert found.get("deploy").shadowed == (town_copy,)
    assert found.get("old-dir-name") is None


# -- invalid plugins and warnings ---------------------------------------------------------


def test_invalid_plugins_are_listed_not_skipped(town: Path, add: Callable[..., Path], make_plugin: MakePlugin) -> None:
    add("plugins/good")
    bad_town = make_plugin(town / "plugins" / "bad", 'name = "bad"\n[gate]\ntype = "sometimes"')
    bad_crew = make_plugin(town / "alpha" / "crew" / "bob" / "plugins" / "broken", 'name = "Broken"\n[gate]\ntype = "manual"')
    empty = town / "alpha" / "plugins" / "empty" / "plugin.md"
    empty.parent.mkdir(parents=True)
    empty.write_text("")
    found = discover(Town(town))
    assert [p.name for p in found.plugins] == ["good"]
    assert [(bad.path, bad.rig, bad.line, bad.error) for bad in found.invalid] == [
        (bad_town, "town", 4, "gate.type 'sometimes' is not one of cooldown, cron, condition, event, manual"),
        (empty, "alpha", None, "file is empty (expected TOML frontmatter between +++ lines)"),
        (bad_crew, "alpha", 2,
         "name 'Broken' is invalid: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"),
    ]


def test_an_invalid_copy_does_not_shadow_a_valid_one(town: Path, add: Callable[..., Path], make_plugin: MakePlugin) -> None:
    town_copy = add("plugins/deploy")
    broken = make_plugin(town / "alpha" / "plugins" / "deploy", 'name = "deploy"\n[gate]\ntype = "cooldown"')
    found = discover(Town(town))
    assert [(p.path, p.shadowed) for p in found.plugins] == [(town_copy, ())]
    assert [(bad.path, bad.error) for bad in found.invalid] == [(broken, "a cooldown gate needs gate.duration")]


def test_warnings_name_their_file(town: Path, add: Callable[..., Path]) -> None:
    path = add("alpha/plugins/chatty", extra='colour = "red"')
    found = discover(Town(town))
    assert found.warnings == [f"{path}: unknown key 'colour' (line 3)"]
    assert found.plugins[0].warnings == ("unknown key 'colour' (line 3)",)


# -- locating the town --------------------------------------------------------------------


def test_locate_prefers_explicit_then_env(town: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("GT_TOWN", str(other))
    assert Town.locate(town).root == town.resolve()
    assert Town.locate().root == other.resolve()


def test_locate_missing_town_is_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GT_TOWN", raising=False)
    with pytest.raises(NotFound) as caught:
        Town.locate(tmp_path / "nowhere")
    assert str(caught.value) == f"no town at {tmp_path / 'nowhere'} (--town): the directory does not exist"
    monkeypatch.setenv("GT_TOWN", str(tmp_path / "gone"))
    with pytest.raises(NotFound, match=r"\(\$GT_TOWN\): the directory does not exist"):
        Town.locate()
