"""The schema version: Alembic migrations equal to the models, run under a lock by any number of processes
starting at once, on an empty database and on one created before migrations (by create_all, no version)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from agent.db import schema
from agent.db.engine import open_engine
from agent.db.schema_compare import include_object
from tests.conftest import ROOT


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """A new empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'membot.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


def start_together(url: str, count: int) -> list[subprocess.CompletedProcess[str]]:
    """`count` processes that each open the database (which upgrades it), released at the same moment."""
    script = ("import sys, time\nfrom agent.db.engine import open_engine\n"
              "start = float(sys.argv[2])\nwhile time.time() < start: pass\n"
              "open_engine(sys.argv[1]).dispose()\nprint('ok')\n")
    import time

    start = str(time.time() + 3.0)  # time for every interpreter to import before the race
    procs = [subprocess.Popen([sys.executable, "-c", script, url, start], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(count)]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def differences(url: str) -> list[object]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_models(db_url: str) -> None:
    """A new model column or table without a migration fails here: add one (docs/deployment.md)."""
    engine = open_engine(db_url)
    assert schema.current(engine).up_to_date
    engine.dispose()
    assert differences(db_url) == []


def test_processes_starting_at_once_on_an_empty_database(db_url: str) -> None:
    results = start_together(db_url, 4)
    assert [r.returncode for r in results] == [0] * 4, [r.stderr[-2000:] for r in results]
    engine = open_engine(db_url, migrate=False)
    assert schema.current(engine).current == schema.head()
    engine.dispose()


def make_legacy(url: str) -> None:
    """A database as create_all made it before versions: the baseline's tables, some rows, no version table."""
    from alembic import command

    engine = open_engine(url)
    with engine.connect() as conn:  # undo every revision after the baseline
        command.downgrade(schema.config(conn), "0001")
        conn.commit()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO source (scope, name, embedding_model, embedding_dim, chunk_tokens, revision, "
                          "ready, created_at, updated_at) VALUES ('local', 'paper', 'm', 384, 300, 3, TRUE, "
                          "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()


def test_processes_starting_at_once_on_a_database_from_before_versions(db_url: str) -> None:
    make_legacy(db_url)
    engine = open_engine(db_url, migrate=False)
    found = schema.current(engine)
    assert found.legacy and found.current is None
    results = start_together(db_url, 3)
    assert [r.returncode for r in results] == [0] * 3, [r.stderr[-2000:] for r in results]
    assert schema.current(engine).current == schema.head()
    with engine.connect() as conn:  # adopted in place: nothing lost, and an old source is the workspace's
        assert conn.execute(text("SELECT name, revision, audience, origin_channel, uploader FROM source")).all() == [
            ("paper", 3, "workspace", "", "")]
    engine.dispose()
    assert differences(db_url) == []


def test_an_older_database_lacking_columns_is_completed(tmp_path: Path) -> None:
    """Before migrations, columns were added on start; a database from before one of them is completed."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    make_legacy(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE agent DROP COLUMN archival_revision"))
        conn.execute(text("ALTER TABLE document DROP COLUMN owner"))
    engine.dispose()
    engine = open_engine(url)
    columns = {c["name"] for c in inspect(engine).get_columns("agent")}
    assert "archival_revision" in columns
    engine.dispose()
    assert differences(url) == []


def test_db_commands(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    home = tmp_path / "home"
    status = run_cli(home, "db", "status")
    assert status.returncode == 0 and "Schema version: none (empty)" in status.stdout
    first = run_cli(home, "db", "upgrade")
    assert first.returncode == 0 and f"from empty to {schema.head()}" in first.stdout
    again = run_cli(home, "db", "upgrade")
    assert "up to date" in again.stdout
    assert f"Schema version: {schema.head()}; newest: {schema.head()}." in run_cli(home, "db", "status").stdout


def test_the_quick_scan_finds_alembics_head() -> None:
    assert schema.newest_on_disk() == schema.head()


def test_a_current_database_is_checked_without_alembic_or_the_lock(db_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every start opens the database: at the newest version that is one SELECT, with nothing migrated."""
    open_engine(db_url).dispose()  # now at the newest version
    script = ("import sys\nfrom agent.db.engine import open_engine\nopen_engine(sys.argv[1]).dispose()\n"
              "print('alembic' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script, db_url], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"

    def no_lock(engine: object) -> None:
        raise AssertionError("a database at the newest version took the schema lock")

    monkeypatch.setattr(schema, "schema_lock", no_lock)
    before = schema.upgrade(open_engine(db_url, migrate=False))
    assert before.up_to_date and before.current == schema.head()


def test_a_database_a_version_behind_is_upgraded_on_start(db_url: str) -> None:
    from alembic import command

    engine = open_engine(db_url)
    with engine.connect() as conn:
        command.downgrade(schema.config(conn), "-1")
        conn.commit()
    assert not schema.at_newest(engine)
    behind = schema.current(engine).current
    assert behind is not None and behind != schema.head()
    engine.dispose()
    engine = open_engine(db_url)
    assert schema.at_newest(engine) and schema.current(engine).current == schema.head()
    engine.dispose()
    assert differences(db_url) == []
