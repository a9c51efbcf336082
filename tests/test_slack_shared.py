"""Two Slack app instances of one workspace on one database (as two `membot serve slack` processes behind a load
balancer): a retry, or the app_mention + message pair of one message, reaching the other instance is answered
once, and a thread follow-up reaching the other instance is followed. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from agent.chat import CHANNEL_PERSONA
from agent.db.models import Message
from bot.container import Container
from bot.run_slack import RunningSlack, start_slack
from tests.conftest import make_settings
from tests.fakes import FakeOpenAI
from tests.fakes.slack_server import FakeSlack
from tests.test_slack import model_env, short_echo, slack_env


class Pair:
    def __init__(self, slack: FakeSlack, containers: list[Container], running: list[RunningSlack]) -> None:
        self.slack, self.containers, self.running = slack, containers, running

    def to(self, i: int) -> None:
        """Slack's next deliveries reach instance i (the load balancer's choice)."""
        self.slack.use_http(self.running[i].url)

    def idle(self) -> None:
        for r in self.running:
            r.bot.wait_idle(30)

    def user_messages(self) -> list[str]:
        c = self.containers[0]
        agent = c.agents.get("slack:T1", "channel:C1")
        with Session(c.engine) as s:
            rows = s.exec(select(Message).where(Message.agent_id == agent.id, Message.role == "user",
                                                Message.kind == "message").order_by(col(Message.id))).all()
            return [m.content for m in rows]


@pytest.fixture(params=["sqlite", "postgres"])
def pair(request: pytest.FixtureRequest, tmp_path: Path, embedder: Any) -> Iterator[Pair]:
    # PostgreSQL: a database of its own, since each FakeSlack numbers its messages from 1 again
    database = (f"sqlite:///{tmp_path / 'shared.db'}" if request.param == "sqlite"
                else request.getfixturevalue("fresh_pg_url"))
    with FakeOpenAI(default=short_echo) as model, FakeSlack() as slack:
        containers, running = [], []
        try:
            for i in range(2):
                home = tmp_path / f"home{i}"
                home.mkdir()
                settings = make_settings(home, **slack_env(slack, "http"), **model_env(model),
                                         MEMBOT_DATABASE_URL=database, MEMBOT_MILVUS_URI=str(home / "milvus.db"))
                containers.append(Container(settings, embedder=embedder))
                running.append(start_slack(containers[-1]))
            # The channel's agent exists already: two processes creating it at once is the turn engine's concern.
            containers[0].agents.open("slack:T1", "channel:C1", persona=CHANNEL_PERSONA)
            yield Pair(slack, containers, running)
        finally:
            for r in running:
                r.close()
            for c in containers:
                c.close()


def test_a_retry_reaching_the_other_instance_is_answered_once(pair: Pair) -> None:
    slack = pair.slack
    event = slack.events_for({"type": "message", "user": "U1", "text": "<@UBOT> once", "ts": slack.next_ts()},
                             "C1")[-1]
    pair.to(0)
    first = slack.deliver_event(event)
    pair.to(1)
    slack.deliver_event(event, event_id=first["event_id"], retry=1)
    slack.wait_posts(1)
    pair.idle()
    assert [p["text"] for p in slack.posts()] == ["re: once"]
    assert pair.user_messages() == ["once"]


def test_mention_and_message_at_two_instances_answered_once(pair: Pair) -> None:
    slack = pair.slack
    for i, text in enumerate(["<@UBOT> first", "<@UBOT> second", "<@UBOT> third"]):
        mention, message = slack.events_for({"type": "message", "user": "U1", "text": text, "ts": slack.next_ts()},
                                            "C1")
        pair.to(i % 2)
        slack.deliver_event(mention)
        pair.to(1 - i % 2)
        slack.deliver_event(message)
        slack.wait_posts(i + 1)  # one turn at a time: serializing one agent's turns across processes is not tested here
        pair.idle()
    assert sorted(p["text"] for p in slack.posts()) == ["re: first", "re: second", "re: third"]
    assert sorted(pair.user_messages()) == ["first", "second", "third"]


def test_thread_follow_up_reaching_the_other_instance(pair: Pair) -> None:
    slack = pair.slack
    pair.to(0)
    root = slack.say("U1", "C1", "<@UBOT> let's plan")
    slack.wait_posts(1)
    pair.idle()
    pair.to(1)
    slack.say("U2", "C1", "the date is May 3", thread_ts=root)
    [_, follow] = slack.wait_posts(2)
    assert follow["thread_ts"] == root and follow["text"] == "re: the date is May 3"
    assert slack.calls_of("conversations.replies") == []  # instance 1 knew from the shared ledger
    other = slack.say("U1", "C1", "lunch?")  # a thread the bot is not in: asked once, then known by both
    slack.say("U2", "C1", "yes", thread_ts=other)
    pair.idle()
    pair.to(0)
    slack.say("U3", "C1", "yes too", thread_ts=other)
    pair.idle()
    assert len(slack.posts()) == 2
    assert [c.args["ts"] for c in slack.calls_of("conversations.replies")] == [other]


def test_old_ledger_rows_expire(pair: Pair) -> None:
    from datetime import timedelta

    from agent.db.models import utcnow

    ledger = pair.containers[0].ledger
    assert ledger.first("slack:event:EvOld") and not pair.containers[1].ledger.first("slack:event:EvOld")
    ledger.joined("slack:T1:C1:1.1")
    ledger.sweep(utcnow() + timedelta(days=2))
    assert not ledger.seen("slack:event:EvOld") and ledger.in_thread("slack:T1:C1:1.1")
    ledger.sweep(utcnow() + timedelta(days=31))
    assert ledger.in_thread("slack:T1:C1:1.1") is None
