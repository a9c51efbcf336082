"""`membot db`: the schema version of the configured database, and upgrading it (also done on every start)."""

from __future__ import annotations

import click


@click.group()
def db() -> None:
    """The SQL schema: its version, and upgrading it."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema. Safe while other membot processes run or start."""
    from agent.db import schema
    from agent.db.engine import open_engine
    from bot.settings import load_settings

    engine = open_engine(load_settings().database_url, migrate=False)
    try:
        before = schema.upgrade(engine)
    finally:
        engine.dispose()
    if before.up_to_date:
        click.echo(f"The database schema is up to date (version {before.head}).")
    elif before.legacy:
        click.echo(f"Adopted a database from before schema versions; now at version {before.head}.")
    else:
        click.echo(f"Upgraded the database schema from {before.current or 'empty'} to {before.head}.")


@db.command("status")
def db_status() -> None:
    """Print the database's schema version and the newest one this membot knows."""
    from agent.db import schema
    from agent.db.engine import open_engine
    from bot.settings import load_settings

    engine = open_engine(load_settings().database_url, migrate=False)
    try:
        found = schema.current(engine)
    finally:
        engine.dispose()
    current = found.current or ("none (from before schema versions)" if found.legacy else "none (empty)")
    click.echo(f"Schema version: {current}; newest: {found.head}.")
    if not found.up_to_date:
        click.echo("Run `membot db upgrade` (or start membot) to upgrade it.")
