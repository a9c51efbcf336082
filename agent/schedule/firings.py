"""Firings in flight: one row per (schedule, due time), written in the same transaction that claims the firing.

A firing is leased to the process that claimed it; that process renews the lease while the turn runs and
records each reply as it is posted. If it dies, the lease runs out and the platform's leader takes the firing
over: it runs the turn again (status running) or posts only the replies not yet posted (status delivering). So
a claimed firing is never lost, and a reply already recorded as posted is never posted again.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, Table, Text, UniqueConstraint, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, SQLModel

from agent.db.models import utcnow

RUNNING, DELIVERING, DONE = "running", "delivering", "done"


class ScheduleFiring(SQLModel, table=True):
    __tablename__ = "schedule_firing"
    __table_args__ = (UniqueConstraint("schedule_id", "due_at"),)
    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(index=True)
    platform: str = Field(max_length=50, index=True)
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    outcome: str = Field(max_length=20)  # fired (a turn runs) | missed (a notice is posted)
    event_text: str = Field(default="", sa_column=Column(Text))  # the turn's input, the same on a retake
    status: str = Field(default=RUNNING, max_length=20, index=True)  # running | delivering | done
    owner: str = Field(default="", max_length=200)
    lease_until: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    texts: str = Field(default="", sa_column=Column(Text))  # JSON list of replies, once the turn finished
    sent: int = 0  # how many of `texts` were posted
    attempts: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


FIRINGS: Table = ScheduleFiring.__table__  # type: ignore[attr-defined]
_c = FIRINGS.c


def new_owner() -> str:
    """This service's name on its leases (two services in one process are two owners)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def record(conn: Connection, values: dict[str, object]) -> int:
    """Insert a claimed firing (inside the claim's transaction); returns its id."""
    return int(conn.execute(FIRINGS.insert().values(**values).returning(_c.id)).scalar_one())


class Firings:
    def __init__(self, engine: Engine, owner: str) -> None:
        self.engine = engine
        self.owner = owner

    def get(self, firing_id: int) -> ScheduleFiring | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(FIRINGS).where(_c.id == firing_id)).mappings().first()
        return ScheduleFiring(**row) if row else None

    def renew(self, firing_ids: set[int], until: datetime) -> None:
        """Keep the leases of the firings this service is still working on."""
        if firing_ids:
            with self.engine.begin() as conn:
                conn.execute(update(FIRINGS).where(_c.id.in_(firing_ids), _c.owner == self.owner,
                                                   _c.status != DONE).values(lease_until=until))

    def expired(self, platform: str, now: datetime) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(_c.id).where(_c.platform == platform, _c.status != DONE,
                                                         _c.lease_until < now).order_by(_c.id)).scalars())

    def take_over(self, firing_id: int, now: datetime, until: datetime) -> ScheduleFiring | None:
        """Take an expired lease, in one guarded UPDATE: of two processes trying, one gets it."""
        with self.engine.begin() as conn:
            taken = conn.execute(update(FIRINGS).where(_c.id == firing_id, _c.status != DONE, _c.lease_until < now)
                                 .values(owner=self.owner, lease_until=until, attempts=_c.attempts + 1)
                                 .returning(_c.id)).first()
        return self.get(firing_id) if taken else None

    def replies_ready(self, firing_id: int, texts: list[str]) -> bool:
        """The turn finished: store its replies before posting any. False if the lease was lost meanwhile."""
        return self._mine(firing_id, status=DELIVERING, texts=json.dumps(texts), sent=0)

    def posted(self, firing_id: int, count: int, last: bool) -> bool:
        """`count` replies are posted (all of them when `last`)."""
        values: dict[str, object] = {"sent": count}
        if last:
            values["status"] = DONE
        return self._mine(firing_id, **values)

    def still_mine(self, firing_id: int) -> bool:
        return self._mine(firing_id)

    def _mine(self, firing_id: int, **values: object) -> bool:
        with self.engine.begin() as conn:
            stmt = update(FIRINGS).where(_c.id == firing_id, _c.owner == self.owner, _c.status != DONE)
            return conn.execute(stmt.values(owner=self.owner, **values).returning(_c.id)).first() is not None


def texts_of(firing: ScheduleFiring) -> list[str]:
    return list(json.loads(firing.texts)) if firing.texts else []
