"""Alembic migrations of membot's SQL schema: env.py runs them on the connection `agent.db.schema` hands over."""
