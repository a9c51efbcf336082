"""Names people give things (sources, agents) and names that arrive with files: one normal form, checked once.

A name is NFC-normalized (so "café" typed and "café" pasted from macOS are one name), loses control and
bidirectional-override characters (a newline in a file name must not forge lines of output), has its runs of
white space collapsed, and is checked against the column's length before any database sees it (SQLite does not
enforce lengths, PostgreSQL fails the whole statement). Sources are unique without regard to case.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import ColumnElement, func, literal

from agent.errors import FileRejected, UserError

NAME_LIMIT = 200  # Source.name, Agent.name, scopes
FILE_NAME_LIMIT = 1000  # Document.file_name
# Cc: C0/C1 controls (newline, escape...); bidi embeddings, overrides and isolates reorder what follows them.
_INVISIBLE = re.compile("[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")


def display(text: str) -> str:
    """`text` safe to print on one line: controls and bidi overrides become spaces, runs of space one."""
    return _SPACES.sub(" ", _INVISIBLE.sub(" ", text)).strip()


def clean_name(raw: str, what: str = "source name", limit: int = NAME_LIMIT) -> str:
    """The normal form of a name, or UserError saying what is wrong with it."""
    name = display(unicodedata.normalize("NFC", raw))
    if not name:
        raise UserError(f"The {what} is empty; give a name with at least one visible character.")
    if len(name) > limit:
        raise UserError(f"The {what} is {len(name):,} characters long; the limit is {limit}. Choose a shorter "
                        f"name (it starts {name[:40]!r}).")
    return name


def clean_file_name(raw: str) -> str:
    """A file's name within a source in normal form, or FileRejected (the loader reports it for that file)."""
    name = display(unicodedata.normalize("NFC", raw))
    if not name:
        raise FileRejected("the file has no usable name")
    if len(name) > FILE_NAME_LIMIT:
        raise FileRejected(f"its name (with its folders) is {len(name):,} characters long; the limit is "
                           f"{FILE_NAME_LIMIT:,}. Load it from a folder closer to it, or rename it")
    return name


def lookup_form(raw: str) -> str:
    """A name as typed to find something: normalized like `clean_name`, never refused (it is just not found)."""
    return display(unicodedata.normalize("NFC", raw))


def same_name_sql(column: Any, name: str) -> ColumnElement[bool]:
    """SQL for "the column holds `name`, case aside". The database's lower() on both sides, so the test agrees
    with the unique index on lower(name) (PostgreSQL folds all letters; SQLite only A-Z)."""
    return func.lower(column) == func.lower(literal(name))


def split_names(text: str) -> list[str]:
    """Several names given as one argument: split at commas, where a name holding a comma is quoted
    ("a,b",c) — as a CSV line is."""
    import csv

    row = next(csv.reader([text], skipinitialspace=True), [])
    return [n.strip() for n in row if n.strip()]
