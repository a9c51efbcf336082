"""First contact races: many threads opening the same new agent, or meeting the same new person, at once all
succeed and leave one row, on SQLite and PostgreSQL (the unique key decides, never a read before the write)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, func, select

from agent.db.models import Agent, Block
from agent.memory.core import CoreMemory, Speaker
from bot.container import Container
from tests.conftest import make_settings

THREADS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def box(request: pytest.FixtureRequest, home: Path, embedder: Any) -> Iterator[Container]:
    env = {"MEMBOT_DATABASE_URL": request.getfixturevalue("fresh_pg_url")} if request.param == "postgresql" else {}
    with Container(make_settings(home, **env), embedder=embedder) as c:
        yield c


def all_at_once(work: Callable[[int], object]) -> tuple[list[object], list[BaseException]]:
    start = threading.Barrier(THREADS)
    results: list[object] = []
    errors: list[BaseException] = []

    def run(n: int) -> None:
        start.wait()
        try:
            results.append(work(n))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def test_concurrent_open_of_a_new_agent_gives_one_agent(box: Container) -> None:
    results, errors = all_at_once(lambda _n: box.agents.open("slack:T1", "C-new"))
    assert errors == []
    ids = {a.id for a in results}  # type: ignore[attr-defined]
    assert len(ids) == 1 and None not in ids
    with Session(box.engine) as s:
        assert s.exec(select(func.count()).select_from(Agent)).one() == 1
        persona = s.exec(select(Block).where(Block.agent_id == ids.pop(), Block.label == "persona")).all()
        assert len(persona) == 1 and persona[0].value


def test_concurrent_first_meeting_of_a_person_gives_one_block(box: Container) -> None:
    agent_id = int(box.agents.open("local", "team").id or 0)
    ann = Speaker("U1", "Ann")

    def meet(_n: int) -> int:
        with Session(box.engine) as s:
            block = CoreMemory(s, agent_id).person(ann, "Likes tea.")
            s.commit()
            return int(block.id or 0)

    results, errors = all_at_once(meet)
    assert errors == []
    assert len(set(results)) == 1
    with Session(box.engine) as s:
        rows = s.exec(select(Block).where(Block.agent_id == agent_id, Block.label == ann.label)).all()
    assert len(rows) == 1
    assert rows[0].value == "Name: Ann\nLikes tea." and rows[0].title == "Ann"
