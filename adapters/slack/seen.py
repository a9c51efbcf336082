"""Slack's keys for the shared event ledger: one string per event id, (team, channel, ts) message, or file."""

from __future__ import annotations

from agent import Ledger


class SeenKeys:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def first(self, kind: str, *parts: str) -> bool:
        """True for the first time any process records this event."""
        return self.ledger.first(_key(kind, parts))

    def known(self, kind: str, *parts: str) -> bool:
        return self.ledger.seen(_key(kind, parts))


def _key(kind: str, parts: tuple[str, ...]) -> str:
    return ":".join(("slack", kind, *parts))
