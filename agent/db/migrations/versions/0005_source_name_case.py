"""Source names are unique without regard to case within a scope: a unique index on (scope, lower(name)).

Revision ID: 0005
Revises: 0004
Created: 2026-12-02
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("membot.schema")
INDEX = "uq_source_scope_lower_name"


def upgrade() -> None:
    clash = op.get_bind().execute(sa.text(
        "SELECT scope, lower(name) FROM source GROUP BY scope, lower(name) HAVING count(*) > 1")).first()
    if clash is not None:  # an older membot let "Report" and "report" both exist: keep them, say so
        log.warning("index %s was not created: sources whose names differ only by case exist (%s in %s); rename "
                    "or delete one of each pair, then run `membot db upgrade` again", INDEX, clash[1], clash[0])
        return
    op.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {INDEX} ON source (scope, lower(name))")


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
