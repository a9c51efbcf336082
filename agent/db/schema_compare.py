"""What the migrations own: every table in the models except APScheduler's job stores (it creates those)."""

from __future__ import annotations

from typing import Any

FOREIGN_PREFIXES = ("apscheduler_jobs",)


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = getattr(table, "name", name) or ""
    return not table_name.startswith(FOREIGN_PREFIXES)
