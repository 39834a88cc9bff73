"""Shared fixtures: temporary towns and plugin directories written on disk, real mail and webhook servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import SmtpServer, WebhookServer

MakePlugin = Callable[..., Path]


def write_plugin(directory: Path, frontmatter: str, body: str = "Do the thing.\n", run_sh: str | None = None) -> Path:
    """Write ``<directory>/plugin.md`` (TOML ``frontmatter`` between ``+++`` lines, then ``body``).

    Line N of ``frontmatter`` is line N + 1 of the file.  ``run_sh``, when given,
    becomes an executable ``run.sh`` beside it.  Returns the ``plugin.md`` path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "plugin.md"
    path.write_text(f"+++\n{frontmatter}\n+++\n{body}", encoding="utf-8")
    if run_sh is not None:
        script = directory / "run.sh"
        script.write_text(run_sh, encoding="utf-8")
        script.chmod(0o755)
    return path


@pytest.fixture
def make_plugin() -> MakePlugin:
    """``make_plugin(dir, frontmatter, body="Do the thing.\\n", run_sh=None) -> Path`` of plugin.md."""
    return write_plugin


@pytest.fixture
def town(tmp_path: Path) -> Path:
    """A town with nothing in it yet: an empty ``plugins/`` (what makes it a town), no rigs, no ledger."""
    root = tmp_path / "town"
    (root / "plugins").mkdir(parents=True)
    return root


@pytest.fixture
def fake_gc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``gc`` (Gas City's command, tests/fake_gc.py) first on PATH for the test and what it starts; its state directory."""
    from citykit import install_fake_gc

    return install_fake_gc(tmp_path, monkeypatch)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    """A real HTTP server on 127.0.0.1 that keeps every JSON POST."""
    server = WebhookServer().start()
    yield server
    server.stop()


BACKENDS = ("sqlite", "postgresql")  # the storage backends every ledger, patrol, escalation and digest test runs against


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server (the pgserver wheel), one per test process, stopped at the end of the session."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The storage backend of this test's towns and ledgers, by name.

    Used by every test of tests/test_ledger.py, test_patrol.py,
    test_escalation.py, test_digest.py and test_guards.py (``pytestmark``),
    so each runs once per backend.  ``sqlite`` needs nothing: a town's
    ledger is the file in its ``.gtui/``.  ``postgresql`` gives the test a
    schema of its own on the session's server, through ``GT_LEDGER_URL``
    (which the gtui processes the test starts inherit).  A test of the SQLite
    file itself is marked ``sqlite_only``.
    """
    if request.param == "postgresql":
        if request.node.get_closest_marker("sqlite_only"):
            pytest.skip("a test of the SQLite file itself")
        from gtcore.storage.testing import postgres_schema

        schema = "t_" + uuid.uuid4().hex[:16]
        monkeypatch.setenv("GT_LEDGER_URL", postgres_schema(request.getfixturevalue("postgres_server"), schema))
    yield request.param


@pytest.fixture(autouse=True)
def _no_kennel_outlives_its_test(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every kennel a test's commands started (for a town under this worker's temporary directory) is stopped after it.

    Kennels are detached on purpose: nothing else would stop one before its
    ``kennel_idle``, and one left over would hold a town a later test reuses.
    """
    yield
    from kennelkit import close_test_kennels, stop_kennels_under

    close_test_kennels()
    stop_kennels_under(tmp_path_factory.getbasetemp())
