"""The agent service every adapter calls: open agents, queue their turns one at a time, attach sources, and
show memory. Platform-neutral: adapters translate to and from it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, func, select

from agent.archival.catalog import Catalog
from agent.archival.milvus_store import PassageStore
from agent.archival.search import Searcher, SearchPage
from agent.db.models import Agent, Block, Message, Source, SourceBinding
from agent.db.upsert import insert_ignore
from agent.embeddings.base import Embedder
from agent.errors import NotFound, UserError
from agent.loop import TurnRunner
from agent.memory import recall
from agent.memory.archival import ArchivalMemory, attached_sources
from agent.memory.core import PERSONA, CoreMemory
from agent.names import clean_name
from agent.presets import Presets
from agent.turns import EventSink, Incoming, TurnResult


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
                 default_persona: str = "sam", default_human: str = "basic") -> None:
        self.engine = engine
        self._runner = runner
        self.store = store
        self.searcher = searcher
        self.catalog = catalog
        self.embedder = embedder
        self.presets = presets
        self.default_persona = default_persona
        self.default_human = default_human
        self._queues: dict[int, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    # agents --------------------------------------------------------------------------------------------
    def find(self, scope: str, name: str) -> Agent | None:
        with Session(self.engine) as s:
            return s.exec(select(Agent).where(Agent.scope == scope, Agent.name == name)).first()

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
    def submit(self, agent_id: int, incoming: Incoming, on_event: EventSink | None = None) -> Future[TurnResult]:
        """Queue a turn; turns of one agent run one at a time, in the order submitted."""
        return self._queue(agent_id).submit(self._turn, agent_id, incoming, on_event)

    def send(self, agent_id: int, incoming: Incoming, on_event: EventSink | None = None) -> TurnResult:
        return self.submit(agent_id, incoming, on_event).result()

    def _turn(self, agent_id: int, incoming: Incoming, on_event: EventSink | None) -> TurnResult:
        with Session(self.engine, expire_on_commit=False) as s:
            agent = s.get(Agent, agent_id)
            if agent is None:
                raise NotFound(f"Agent {agent_id} no longer exists.")
            archival = ArchivalMemory(s, agent, self.store, self.searcher, self.catalog, self.embedder)
            return self._runner.run(s, agent, incoming, archival, on_event, self.human_preset(agent))

    def _queue(self, agent_id: int) -> ThreadPoolExecutor:
        with self._lock:
            if agent_id not in self._queues:
                self._queues[agent_id] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"agent-{agent_id}")
            return self._queues[agent_id]

    def run_queued(self, agent_id: int, fn: Callable[[], object]) -> object:
        """Run an edit (pop, rethink...) in the agent's queue, so it never races a turn."""
        return self._queue(agent_id).submit(fn).result()

    # sources -------------------------------------------------------------------------------------------
    def attach(self, agent_id: int, source_name: str) -> tuple[Source, bool]:
        """Attach by reference. Returns the source and whether it was newly attached."""
        with Session(self.engine) as s:
            agent = s.get(Agent, agent_id)
            assert agent is not None
            source = self.catalog.get(agent.scope, source_name)
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
        return int(self.run_queued(agent_id, work))  # type: ignore[call-overload]

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
        self.run_queued(agent_id, work)

    @staticmethod
    def _last_user_message(s: Session, agent_id: int) -> Message | None:
        return s.exec(select(Message).where(Message.agent_id == agent_id, Message.role == "user",
                                            Message.kind == "message").order_by(col(Message.id).desc())).first()

    def close(self) -> None:
        with self._lock:
            queues, self._queues = list(self._queues.values()), {}
        for q in queues:
            q.shutdown(wait=True)
