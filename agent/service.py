"""The agent service every adapter calls: open agents, queue their turns one at a time, attach sources, and
show memory. Platform-neutral: adapters translate to and from it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, func, select

from agent.archival.audience import place_of_agent
from agent.archival.catalog import Catalog
from agent.archival.milvus_store import PassageStore
from agent.archival.search import Searcher, SearchPage
from agent.db.models import Agent, Block, Message, Source, SourceBinding
from agent.db.upsert import insert_ignore
from agent.embeddings.base import Embedder
from agent.errors import NotFound, UserError
from agent.inbox import DONE, Inbox, Question
from agent.loop import TurnRunner
from agent.memory import recall
from agent.memory.archival import ArchivalMemory, attached_sources
from agent.memory.core import PERSONA, CoreMemory
from agent.names import clean_name
from agent.pool import Abandoned, TurnPool, check_abandoned
from agent.presets import Presets
from agent.schedule.delivery import DeliveryRegistry, target_for
from agent.turns import EventSink, Incoming, TurnEvent, TurnResult

T = TypeVar("T")
Lane = tuple[str, str]  # an agent's (scope, name): its lane in the turn pool, known before the agent exists


@dataclass(frozen=True)
class MemoryView:
    blocks: list[Block]
    messages: int
    in_context: int
    archival: int
    sources: list[str]
    summary: str


@dataclass(frozen=True)
class AgentSummary:
    agent: Agent
    messages: int
    sources: list[str]


class AgentService:
    def __init__(self, engine: Engine, runner: TurnRunner, store: PassageStore, searcher: Searcher,
                 catalog: Catalog, embedder: Callable[[], Embedder], presets: Presets,
                 default_persona: str = "sam", default_human: str = "basic", pool: TurnPool | None = None,
                 inbox: Inbox | None = None) -> None:
        self.engine = engine
        self._runner = runner
        self.store = store
        self.searcher = searcher
        self.catalog = catalog
        self.embedder = embedder
        self.presets = presets
        self.default_persona = default_persona
        self.default_human = default_human
        self.pool = pool or TurnPool()
        self.inbox = inbox or Inbox(engine, DeliveryRegistry())
        # A question's row and its place in its lane are taken together (striped by lane: lanes do not wait on
        # one another's inserts).
        self._accepting = [threading.Lock() for _ in range(64)]
        self._lanes: dict[int, Lane] = {}  # agent id -> lane; names never change
        self._lock = threading.Lock()
        if not event.contains(engine, "commit", _no_commit_when_abandoned):
            event.listen(engine, "commit", _no_commit_when_abandoned)

    # agents --------------------------------------------------------------------------------------------
    def find(self, scope: str, name: str) -> Agent | None:
        with Session(self.engine) as s:
            return self._known(s.exec(select(Agent).where(Agent.scope == scope, Agent.name == name)).first())

    def _known(self, agent: Agent | None) -> Agent | None:
        if agent is not None and agent.id is not None:
            with self._lock:
                self._lanes[agent.id] = (agent.scope, agent.name)
        return agent

    def get(self, scope: str, name: str) -> Agent:
        agent = self.find(scope, name)
        if agent is None:
            names = [a.agent.name for a in self.summaries(scope)]
            known = f" Agents: {', '.join(names)}." if names else " There are no agents yet."
            raise NotFound(f"No agent named {name!r}.{known}")
        return agent

    def open(self, scope: str, name: str, persona: str | None = None, human: str | None = None) -> Agent:
        """The agent called `name`, created with the persona and human presets on first use."""
        name = clean_name(name, "agent name")
        existing = self.find(scope, name)
        if existing is not None:
            return existing
        persona_name = persona or self.default_persona
        human_name = human or self.default_human
        persona_text = self.presets.get("personas", persona_name)
        self.presets.get("humans", human_name)  # fail early on an unknown preset
        # insert-or-get: the unique key on (scope, name) decides who was first, so a mention and /memory
        # arriving together in a new channel (in two threads or two processes) both get the one agent.
        fresh = Agent(scope=scope, name=name, persona_preset=persona_name, human_preset=human_name)
        with Session(self.engine) as s:
            insert_ignore(s.connection(), Agent.__table__, fresh.model_dump(exclude={"id"}))  # type: ignore[attr-defined]
            agent = s.exec(select(Agent).where(Agent.scope == scope, Agent.name == name)).one()
            CoreMemory(s, int(agent.id or 0)).ensure(PERSONA, persona_text)
            s.commit()
            s.refresh(agent)
            self._known(agent)
            return agent

    def summaries(self, scope: str) -> list[AgentSummary]:
        with Session(self.engine) as s:
            agents = s.exec(select(Agent).where(Agent.scope == scope).order_by(Agent.name)).all()
            counts = dict(s.exec(select(Message.agent_id, func.count()).group_by(col(Message.agent_id))).all())
            return [AgentSummary(a, int(counts.get(a.id, 0)), [x.name for x in attached_sources(s, int(a.id or 0))])
                    for a in agents]

    def delete(self, scope: str, name: str) -> None:
        agent = self.get(scope, name)
        aid = int(agent.id or 0)
        collection = self.store.agent_collection(aid)
        self.store.drop(collection)
        self.searcher.cache.invalidate(collection)  # a new agent may get this id, and must not see these passages
        with Session(self.engine) as s:
            for table in (SourceBinding, Message, Block):
                s.exec(delete(table).where(col(table.agent_id) == aid))  # type: ignore[attr-defined]
            s.exec(delete(Agent).where(col(Agent.id) == aid))
            s.commit()

    def human_preset(self, agent: Agent) -> str:
        return self.presets.get("humans", agent.human_preset or self.default_human)

    # turns ---------------------------------------------------------------------------------------------
    def lane(self, agent_id: int) -> Lane:
        """The agent's lane in the turn pool."""
        with self._lock:
            known = self._lanes.get(agent_id)
        if known is not None:
            return known
        with Session(self.engine) as s:
            agent = s.get(Agent, agent_id)
        if agent is None:
            raise NotFound(f"Agent {agent_id} no longer exists.")
        self._known(agent)
        return agent.scope, agent.name

    def submit(self, agent_id: int, incoming: Incoming, on_event: EventSink | None = None,
               ticket: int = 0) -> Future[TurnResult]:
        """Queue a turn; turns of one agent run one at a time, in the order submitted (in every process)."""
        return self.pool.submit(self.lane(agent_id), lambda: self._turn(agent_id, incoming, _checked(on_event),
                                                                         ticket))

    def submit_named(self, scope: str, name: str, incoming: Incoming, on_event: EventSink | None = None,
                     persona: str | None = None, ticket: int = 0) -> Future[TurnResult]:
        """Queue a turn of the agent called `name`, created (with `persona`) on first use: returns at once, the
        agent is opened in its lane, off the caller's thread (an adapter's event loop). `ticket`: the question's
        inbox row (see `accept`)."""
        def turn() -> TurnResult:
            agent = self.open(scope, name, persona=persona)
            return self._turn(int(agent.id or 0), incoming, _checked(on_event), ticket)
        return self.pool.submit((scope, name), turn)

    def send(self, agent_id: int, incoming: Incoming, on_event: EventSink | None = None) -> TurnResult:
        return self.submit(agent_id, incoming, on_event).result()

    def accept(self, question: Question, handle: Callable[[int], T]) -> Future[T] | None:
        """Write a platform question to the inbox and queue `handle(ticket)` in its agent's lane; None when the
        event was accepted before (by this or another process). A handling that runs no turn for the ticket
        closes it as skipped; one abandoned at shutdown leaves it for the next start to answer."""
        lane = (question.scope, question.agent)
        with self._accepting[hash(lane) % len(self._accepting)]:  # ids in lane order: claimed in the order written
            ticket = self.inbox.accept(question)
            if ticket is None:
                return None

            def job() -> T:
                try:
                    result = handle(ticket)
                except Abandoned:
                    raise
                except BaseException:
                    self.inbox.settle(ticket)
                    raise
                self.inbox.settle(ticket)
                return result
            return self.pool.submit(lane, job)

    def _turn(self, agent_id: int, incoming: Incoming, on_event: EventSink | None, ticket: int = 0) -> TurnResult:
        scope, name = self.lane(agent_id)
        # Wait for the agent's earlier turns (in any process) before reading its history; nothing is held meanwhile.
        ticket = self.inbox.claim(ticket, scope, name, incoming,
                                  target_for(Agent(scope=scope, name=name), incoming.thread))
        try:
            with Session(self.engine, expire_on_commit=False, autoflush=False) as s:
                # The turn's reading session: each read is its own transaction, so none stays open (idle in
                # transaction on PostgreSQL) while the model thinks; the turn writes in a session of its own.
                s.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                agent = s.get(Agent, agent_id)
                if agent is None:
                    raise NotFound(f"Agent {agent_id} no longer exists.")
                archival = ArchivalMemory(s, agent, self.store, self.searcher, self.catalog, self.embedder)
                result = self._runner.run(s, agent, incoming, archival, on_event, self.human_preset(agent),
                                          landing=lambda session: self.inbox.finish(session, ticket))
        except Abandoned:
            raise  # left open: the next start tells the asker
        except BaseException:
            self.inbox.close(ticket)
            raise
        if result.failed:  # rolled back; the asker is told by the turn's notice
            self.inbox.close(ticket)
        return result

    def in_lane(self, scope: str, name: str, fn: Callable[[], T]) -> Future[T]:
        """Run `fn` in the lane of the agent called `name` (an adapter's handling of one message: its turn,
        submitted from inside, runs at once in the same lane)."""
        return self.pool.submit((scope, name), fn)

    def run_queued(self, agent_id: int, fn: Callable[[], T]) -> T:
        """Run work (an archival save) in the agent's lane: after this process's earlier turns of the agent."""
        return self.pool.run(self.lane(agent_id), fn)

    def run_edit(self, agent_id: int, fn: Callable[[], T]) -> T:
        """Run an edit of the agent's history or memory (pop, rethink, a memory panel save) in its lane, holding
        the agent's turn claim in the inbox as a turn does: it waits for a turn running in any process, and no
        turn starts while it runs (a few SQL statements; nothing waits on a model meanwhile)."""
        scope, name = self.lane(agent_id)

        def claimed() -> T:
            ticket = self.inbox.claim(0, scope, name, Incoming("", kind="edit"),
                                      target_for(Agent(scope=scope, name=name), ""))
            try:
                result = fn()
            except BaseException:
                self.inbox.close(ticket)
                raise
            self.inbox.close(ticket, DONE)
            return result
        return self.pool.run((scope, name), claimed)

    # sources -------------------------------------------------------------------------------------------
    def attach(self, agent_id: int, source_name: str) -> tuple[Source, bool]:
        """Attach by reference. Returns the source and whether it was newly attached. Only a source the agent's
        place can see is found: to anyone else, a channel's own source does not exist."""
        with Session(self.engine) as s:
            agent = s.get(Agent, agent_id)
            assert agent is not None
            source = self.catalog.get(agent.scope, source_name, place_of_agent(agent.name))
            if s.get(SourceBinding, (agent_id, source.id)) is not None:
                return source, False
            s.add(SourceBinding(agent_id=agent_id, source_id=int(source.id or 0)))
            s.commit()
            return source, True

    def detach(self, agent_id: int, source_name: str) -> Source:
        with Session(self.engine, expire_on_commit=False) as s:  # the caller reads the detached source's name
            binding = next((src for src in attached_sources(s, agent_id) if src.name == source_name), None)
            if binding is None:
                names = ", ".join(x.name for x in attached_sources(s, agent_id)) or "none"
                raise NotFound(f"No source named {source_name!r} is attached. Attached: {names}.")
            s.exec(delete(SourceBinding).where(col(SourceBinding.agent_id) == agent_id,
                                               col(SourceBinding.source_id) == binding.id))
            s.commit()
            return binding

    def has_thread(self, agent_id: int, thread: str) -> bool:
        """Whether the agent has taken part in `thread` (it is in its history), e.g. to follow it after a restart."""
        with Session(self.engine) as s:
            return s.exec(select(Message.id).where(Message.agent_id == agent_id, Message.thread == thread)
                          .limit(1)).first() is not None

    def attached(self, agent_id: int) -> list[Source]:
        with Session(self.engine) as s:
            return attached_sources(s, agent_id)

    # views ---------------------------------------------------------------------------------------------
    def memory(self, agent_id: int) -> MemoryView:
        with Session(self.engine) as s:
            agent = s.get(Agent, agent_id)
            assert agent is not None
            blocks = CoreMemory(s, agent_id).all()
            in_context = s.exec(select(func.count()).select_from(Message).where(
                Message.agent_id == agent_id, col(Message.id) >= agent.context_from)).one()
            return MemoryView(blocks, recall.count(s, agent_id), int(in_context),
                              self.store.count(self.store.agent_collection(agent_id)),
                              [x.name for x in attached_sources(s, agent_id)], agent.summary)

    def search_archival(self, agent_id: int, query: str, page: int = 1, source: str | None = None) -> SearchPage:
        with Session(self.engine) as s:
            agent = s.get(Agent, agent_id)
            assert agent is not None
            archival = ArchivalMemory(s, agent, self.store, self.searcher, self.catalog, self.embedder)
            return self.searcher.search(archival.targets(source), query, k=5, page=page)

    # edits ---------------------------------------------------------------------------------------------
    def pop(self, agent_id: int) -> int:
        """Remove the last exchange (the last message from a person and everything after it)."""
        def work() -> int:
            with Session(self.engine) as s:
                last = self._last_user_message(s, agent_id)
                if last is None:
                    return 0
                rows = s.exec(select(Message).where(Message.agent_id == agent_id, col(Message.id) >= last.id)).all()
                for row in rows:
                    s.delete(row)
                s.commit()
                return len(rows)
        return self.run_edit(agent_id, work)

    def last_user_text(self, agent_id: int) -> Message | None:
        with Session(self.engine) as s:
            return self._last_user_message(s, agent_id)

    def rethink(self, agent_id: int, thought: str) -> None:
        self._edit_last_assistant(agent_id, lambda m: setattr(m, "content", thought), "an inner thought")

    def rewrite(self, agent_id: int, reply: str) -> None:
        def change(m: Message) -> None:
            calls = json.loads(m.tool_calls)
            for c in calls:
                if c["name"] == "send_message":
                    c["arguments"] = json.dumps({"message": reply}, ensure_ascii=False)
            m.tool_calls = json.dumps(calls, ensure_ascii=False)
        self._edit_last_assistant(agent_id, change, "a reply", need_reply=True)

    def _edit_last_assistant(self, agent_id: int, change: Callable[[Message], None], what: str,
                             need_reply: bool = False) -> None:
        def work() -> None:
            with Session(self.engine) as s:
                rows = s.exec(select(Message).where(Message.agent_id == agent_id, Message.role == "assistant")
                              .order_by(col(Message.id).desc()).limit(50)).all()
                target = next((m for m in rows if (recall.visible_text(m) if need_reply else m.content)), None)
                if target is None:
                    raise UserError(f"There is no {what} to change yet.")
                change(target)
                s.add(target)
                s.commit()
        self.run_edit(agent_id, work)

    @staticmethod
    def _last_user_message(s: Session, agent_id: int) -> Message | None:
        return s.exec(select(Message).where(Message.agent_id == agent_id, Message.role == "user",
                                            Message.kind == "message").order_by(col(Message.id).desc())).first()

    @property
    def closing(self) -> bool:
        """True once shutdown began (no new turns are taken)."""
        return self.pool.stopped

    def close(self, grace: float | None = None) -> bool:
        """Take no new turns; let those taken finish for up to `grace` seconds (None: until done), then abandon
        them uncommitted (their questions stay in the inbox for the next start). True when every turn finished."""
        finished = self.pool.close(grace)
        self.inbox.stop()
        return finished


def _checked(on_event: EventSink | None) -> EventSink:
    """The turn's event sink, raising Abandoned at the first event after shutdown abandoned the turn."""
    def sink(e: TurnEvent) -> None:
        check_abandoned()
        if on_event is not None:
            on_event(e)
    return sink


def _no_commit_when_abandoned(_conn: Any) -> None:
    """An engine hook: a commit from a job the pool abandoned raises instead (the turn is rolled back)."""
    check_abandoned()
