"""Two membot processes on one database (PostgreSQL, and SQLite): exactly one runs a platform's schedules, another
takes over when it stops or loses its lock, and a firing is claimed once even when both try at the same moment."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from agent.schedule.leader import _key
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.timed import ManualClock, World

MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)



@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def platform() -> str:
    return "p" + uuid.uuid4().hex[:10]  # the PostgreSQL database is shared by the session's tests


def process(tmp_path: Path, name: str, fake: FakeOpenAI, clock: ManualClock, platform: str, database: str) -> World:
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    return World(home, fake, clock, platform, MEMBOT_DATABASE_URL=database)


def schedule_id(answer: str) -> int:
    match = re.match(r"Scheduled #(\d+) ", answer)
    assert match, answer
    return int(match.group(1))


def test_one_leader_runs_the_jobs_and_another_takes_over(tmp_path: Path, fake: FakeOpenAI, database: str,
                                                          platform: str) -> None:
    clock = ManualClock(MONDAY)
    a = process(tmp_path, "a", fake, clock, platform, database)
    b = process(tmp_path, "b", fake, clock, platform, database)
    other = process(tmp_path, "c", fake, clock, platform + "x", database)  # delivers to another platform only
    try:
        assert a.container.timer.elect() == {platform}
        assert b.container.timer.elect() == set()
        assert other.container.timer.elect() == {platform + "x"}
        sid = schedule_id(b.command("add every 2 hours ping"))  # the follower adds; the job is in the shared store
        assert a.container.timer.job(platform, sid) is not None

        clock.advance(hours=2)
        assert b.due() == [] and other.due() == []
        assert [outcome for outcome, _ in a.fire()] == ["fired"]
        assert (len(a.outbox.items), len(b.outbox.items)) == (1, 0)

        a.close()  # the leader stops: its lock is released
        assert b.container.timer.elect() == {platform}
        assert other.container.timer.elect() == {platform + "x"}
        clock.advance(hours=2)
        assert [outcome for outcome, _ in b.fire()] == ["fired"]
        assert other.fire() == []
        assert (len(a.outbox.items), len(b.outbox.items), len(other.outbox.items)) == (1, 1, 0)
        assert b.row(sid).fire_count == 2
    finally:
        for world in (a, b, other):
            world.close()


def race(worlds: list[World], sid: int, now: datetime) -> list[str]:
    """Fire `sid` in every world at the same moment; their outcomes (an exception's name if one failed)."""
    outcomes: list[str] = []
    start = threading.Barrier(len(worlds))

    def claim(world: World) -> None:
        start.wait()
        try:
            firing = world.schedules.fire(sid, now)
            firing.delivered.result(timeout=60)
            outcomes.append(firing.outcome)
        except Exception as exc:  # SQLite may refuse the loser's write outright: it fired nothing
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=claim, args=(w,)) for w in worlds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def test_a_firing_is_claimed_once_when_two_processes_race(tmp_path: Path, fake: FakeOpenAI, database: str,
                                                          platform: str) -> None:
    clock = ManualClock(MONDAY)
    a = process(tmp_path, "a", fake, clock, platform, database)
    b = process(tmp_path, "b", fake, clock, platform, database)
    try:
        ids = [schedule_id(a.command(f"add in 2 hours race {n}")) for n in range(5)]
        ids.append(schedule_id(a.command("add every 2 hours race repeating")))
        clock.advance(hours=2)
        for sid in ids:
            outcomes = race([a, b], sid, clock())
            assert sorted(outcomes).count("fired") == 1, outcomes
            assert a.row(sid).fire_count == 1
        assert len(a.outbox.items) + len(b.outbox.items) == len(ids)
    finally:
        a.close()
        b.close()


def test_a_leader_that_loses_its_postgres_session_steps_down(tmp_path: Path, fake: FakeOpenAI, pg_url: str,
                                                             platform: str) -> None:
    clock = ManualClock(MONDAY)
    a = process(tmp_path, "a", fake, clock, platform, pg_url)
    b = process(tmp_path, "b", fake, clock, platform, pg_url)
    admin = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    try:
        assert a.container.timer.elect() == {platform}
        assert b.container.timer.elect() == set()
        key = _key(f"scheduler-{platform}") & 0xFFFFFFFFFFFFFFFF
        with admin.connect() as conn:  # the leader's connection dies (a network cut, a server restart...)
            killed = conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid::bigint = :high AND objid::bigint = :low"), {"high": key >> 32, "low": key & 0xFFFFFFFF}
            ).scalars().all()
        assert killed == [True]
        assert a.container.timer.elect() == set()  # it notices at its next pass and stops running jobs
        assert b.container.timer.elect() == {platform}
        assert a.container.timer.elect() == set()
    finally:
        a.close()
        b.close()
        admin.dispose()
