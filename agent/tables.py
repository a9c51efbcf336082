"""Every module that declares SQL tables, imported once so SQLModel's metadata holds the whole schema (for Alembic's
autogenerate and the schema tests; at run time the migrations create the tables)."""

from __future__ import annotations


def register_all() -> None:
    from agent import inbox, ledger  # noqa: F401
    from agent.db import models  # noqa: F401
    from agent.schedule import firings, model  # noqa: F401
