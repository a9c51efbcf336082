"""The one way a failure reaches a person: a UserError's own text, or, for anything else, a short apology with an
error id, while the details (the traceback) go only to the log under that id."""

from __future__ import annotations

import logging
import uuid

from agent import UserError

_log = logging.getLogger("membot")


def report(what: str, exc: BaseException | None = None, log: logging.Logger | None = None) -> str:
    """Log `exc` (default: the exception being handled) under a new error id; return the apology to show."""
    error_id = uuid.uuid4().hex[:8]
    (log or _log).error("error id %s: %s", error_id, what, exc_info=exc or True)
    return f"Sorry, something went wrong (error id {error_id}); the details are in the membot log."


def error_text(exc: BaseException, what: str = "a request failed", log: logging.Logger | None = None) -> str:
    """What a person sees for `exc`: a UserError's text as is (it is written for them), else `report`."""
    return str(exc) if isinstance(exc, UserError) else report(what, exc, log)
