"""SQL storage through SQLModel: the same tables on SQLite and PostgreSQL."""
