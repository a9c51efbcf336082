"""A firing survives its process: the leader is killed (kill -9) while the reminder's turn runs, and the process
that takes over delivers it exactly once; replies already recorded as posted are never posted again. On
PostgreSQL and on SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import update

from agent.schedule.firings import DELIVERING, DONE, FIRINGS
from tests.conftest import ROOT
from tests.fakes.openai_server import FakeOpenAI, delay, reply, tool_call
from tests.fakes.timed import ManualClock, World
from tests.test_schedule_leader import schedule_id

MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)

# The leader, as a process of its own: one scheduler pass at `now`, then it waits (its turn hangs on the model).
LEADER = """
import json, sys, time
from datetime import datetime
from tests.fakes.timed import ManualClock, World
class Model:
    base_url = sys.argv[4]
world = World(__import__("pathlib").Path(sys.argv[1]), Model(), ManualClock(datetime.fromisoformat(sys.argv[5])),
              sys.argv[3], MEMBOT_DATABASE_URL=sys.argv[2], MEMBOT_INBOX_LEASE_SECONDS="4")
print(json.dumps([sorted(world.container.timer.elect()), [f.outcome for f in world.due()]]), flush=True)
time.sleep(600)
"""


def world(tmp_path: Path, name: str, fake: FakeOpenAI, clock: ManualClock, platform: str, database: str) -> World:
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    # A dead process's turn keeps its agent's inbox claim until the lease runs out (real time): a short one here.
    return World(home, fake, clock, platform, MEMBOT_DATABASE_URL=database, MEMBOT_INBOX_LEASE_SECONDS="4")


def test_leader_killed_during_the_turn_delivered_once(tmp_path: Path, fake: FakeOpenAI, database: str) -> None:
    platform = "p" + uuid.uuid4().hex[:8]
    clock = ManualClock(MONDAY)
    b = world(tmp_path, "b", fake, clock, platform, database)
    try:
        sid = schedule_id(b.command("add in 1 hour standup in five minutes"))
        b.container.timer.stop()  # b stays out of the election until the leader is dead
        fake.script(delay(600), tool_call("send_message", message="Standup in five minutes!"))
        due = (MONDAY + timedelta(hours=1)).isoformat()
        (tmp_path / "a").mkdir()
        leader = subprocess.Popen([sys.executable, "-c", LEADER, str(tmp_path / "a"), database, platform,
                                   fake.base_url, due], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert leader.stdout is not None
        assert json.loads(leader.stdout.readline()) == [[platform], ["fired"]], leader.stderr.read()
        fake.wait_for_requests(1, timeout=60)  # its turn is waiting on the model
        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(30)

        b.close()
        b = world(tmp_path, "b", fake, clock, platform, database)
        clock.set(MONDAY + timedelta(hours=1, minutes=1))
        assert b.container.timer.elect() == {platform}
        assert b.due() == []  # claimed already: not fired a second time
        assert b.container.timer.resume_pending() == []  # the dead leader's lease has not run out yet
        clock.advance(minutes=5)
        [resumed] = b.container.timer.resume_pending()
        assert resumed.delivered.result(timeout=60) == ["Standup in five minutes!"]
        clock.advance(minutes=5)
        assert b.container.timer.resume_pending() == [] and b.due() == []
        assert b.outbox.texts == ["Standup in five minutes!"]
        assert b.row(sid).fire_count == 1 and b.row(sid).status == "done"
    finally:
        b.close()


def test_posted_replies_are_not_posted_again(tmp_path: Path, fake: FakeOpenAI, database: str) -> None:
    """A process that died after posting the first of two replies: the next one posts only the second."""
    platform = "p" + uuid.uuid4().hex[:8]
    clock = ManualClock(MONDAY)
    a = world(tmp_path, "a", fake, clock, platform, database)
    try:
        a.command("add in 1 hour two things")
        clock.advance(hours=1)
        fake.script(reply(tool_calls=[("send_message", {"message": "first"}), ("send_message", {"message": "second"})]))
        [(outcome, texts)] = a.fire()
        assert (outcome, texts) == ("fired", ["first", "second"])
        with a.container.engine.begin() as conn:  # as if it had died right after posting "first"
            conn.execute(update(FIRINGS).values(status=DELIVERING, sent=1, owner="gone:1:x",
                                                lease_until=clock() - timedelta(seconds=1)))
        a.container.timer.elect()
        [resumed] = a.container.timer.resume_pending()
        assert resumed.delivered.result(timeout=60) == ["second"]
        assert a.outbox.texts == ["first", "second", "second"]  # the first process's two, then only the second
        with a.container.engine.connect() as conn:
            assert conn.execute(FIRINGS.select()).mappings().one()["status"] == DONE
    finally:
        a.close()
