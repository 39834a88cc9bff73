"""No module outside gtcore/storage executes SQL or holds a database connection (tests included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE_MODULES = {"sqlite3", "psycopg", "psycopg2", "sqlalchemy"}
EXECUTING = {"execute", "executemany", "executescript"}


def sql_uses(path: Path, root: Path = ROOT) -> list[str]:
    """Where ``path`` imports a database driver or calls an ``execute`` method: ``file:line what``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in EXECUTING:
            found.append(f"{path.relative_to(root)}:{node.lineno} calls .{node.func.attr}()")
            continue
        else:
            continue
        found += [f"{path.relative_to(root)}:{node.lineno} imports {name}" for name in names if name.split(".")[0] in DATABASE_MODULES]
    return found


def test_sql_lives_only_in_gtcore_storage() -> None:
    checked = [path for folder in ("gtcore", "gtui", "tests", "examples") for path in (ROOT / folder).rglob("*.py")
               if "storage" not in path.relative_to(ROOT).parts[:2]]
    assert len(checked) > 50
    assert [use for path in checked for use in sql_uses(path)] == []


def test_the_check_sees_sql(tmp_path: Path) -> None:
    (tmp_path / "sneaky.py").write_text("import sqlite3\nconn = sqlite3.connect(':memory:')\nconn.execute('SELECT 1')\n")
    assert sql_uses(tmp_path / "sneaky.py", tmp_path) == ["sneaky.py:1 imports sqlite3", "sneaky.py:3 calls .execute()"]
