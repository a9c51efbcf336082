"""One turn of the MemGPT loop: inner thought, tool calls, heartbeat chaining, a cap on steps.

No SQL write happens while the model thinks: the turn reads through its session (which never writes), keeps its
new messages, core memory edits and agent changes in memory, and lands them in one short transaction of a
session of its own at the end (`_Turn.land`).
If the model fails for good nothing was written and archival inserts are undone, so the agent is as before.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from agent import prompts
from agent.context import Budget, choose_cut, count_tokens, message_tokens, summarize
from agent.db.locks import sqlite_writer
from agent.db.models import Agent, Message, utcnow
from agent.errors import ToolFailure
from agent.layout import prompt_messages
from agent.llm import ChatModel, Completion, ContextOverflow, LLMUnavailable, ModelMisconfigured, ToolCall
from agent.memory import recall
from agent.memory.archival import ArchivalMemory, attached_sources
from agent.memory.core import CoreMemory
from agent.overflow import overflow_notice
from agent.reply_policy import AUTO, CUT_CALL, Decision, ReplyPolicy, reply_call, salvage_cut
from agent.schedule.book import ScheduleBook
from agent.schedule.drafts import TurnSchedules
from agent.tools.context import ToolContext
from agent.tools.registry import Tool, heartbeat_requested
from agent.turns import EventSink, Incoming, TurnEvent, TurnResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    budget: Budget
    max_steps: int = 8
    max_tool_output: int = 3000
    reply_mode: str = AUTO  # see agent/reply_policy.py


class TurnRunner:
    def __init__(self, model: ChatModel, tools: Sequence[Tool], limits: Limits,
                 schedules: ScheduleBook | None = None) -> None:
        self.model = model
        self.schedules = schedules  # for the schedule tools
        self.tools = {t.name: t for t in tools}
        self.schemas = [t.schema for t in tools]
        self.schema_tokens = count_tokens(json.dumps(self.schemas))
        self.limits = limits

    def fixed_estimate(self, memory_tokens: int = 150) -> int:
        """Tokens of every request's fixed part with typical core memory: instructions, schemas, counts."""
        system = prompts.SYSTEM.format(name="agent", blocks="", summary="", sources="none")
        return count_tokens(system) + memory_tokens + self.schema_tokens + count_tokens(prompts.FACTS)

    def run(self, session: Session, agent: Agent, incoming: Incoming, archival: ArchivalMemory,
            on_event: EventSink | None = None, human_preset: str = "",
            landing: Callable[[Session], None] | None = None) -> TurnResult:
        """Run the turn and land it; `landing` writes more in the landing transaction (the inbox marks the
        question answered) and may raise to keep the turn from landing."""
        turn = _Turn(self, session, agent, incoming, archival, on_event or (lambda e: None), human_preset)
        try:
            with session.no_autoflush:  # the reading session never writes: no lock across a model call
                result = turn.run()
            bind = session.get_bind()
            with sqlite_writer(bind.engine), Session(bind, expire_on_commit=False, autoflush=False) as writer:
                turn.land(writer)
                if landing is not None:
                    landing(writer)
                writer.commit()
            if turn.ctx.schedules is not None:
                turn.ctx.schedules.publish()  # the schedules its tools added or cancelled
            return result
        except LLMUnavailable as exc:
            turn.undo()
            return TurnResult(notice=_failure_notice(exc, self.limits.budget, turn.fixed), failed=True,
                              events=turn.result.events, steps=turn.result.steps)
        except BaseException:
            turn.undo()
            raise


class _Turn:
    def __init__(self, runner: TurnRunner, session: Session, agent: Agent, incoming: Incoming,
                 archival: ArchivalMemory, on_event: EventSink, human_preset: str) -> None:
        self.r = runner
        self.human_preset = human_preset
        self.session = session
        self.agent = agent
        self.incoming = incoming
        self.core = CoreMemory(session, int(agent.id or 0))
        self.ctx = ToolContext(session, agent, self.core, archival, incoming.speaker, thread=incoming.thread,
                               schedules=TurnSchedules(runner.schedules) if runner.schedules else None)
        self.on_event = on_event
        self.result = TurnResult()
        self.policy = ReplyPolicy(runner.limits.reply_mode)
        self._facts: dict[str, str] | None = None  # in the turn's first input, fixed at its first step
        self._system_text: str | None = None  # likewise the system prompt, until a summary changes it
        self.fixed = 0  # tokens of system prompt and tool schemas in the latest request
        self.first: Message | None = None  # the message that started this turn
        self.new: list[Message] = []  # this turn's messages, written at `land`
        self._context_from: Message | None = None  # a new message that starts the window after a summary
        self._summarized = False
        self._started = (agent.summary, agent.context_from, agent.pressure_alerted)  # as the turn read them
        self._sizes: dict[tuple[str, int], int] = {}
        self._archived: tuple[int, int] | None = None  # (inserts this turn, archival passages)
        self.window = list(session.exec(select(Message).where(Message.agent_id == agent.id,
                                                              col(Message.id) >= agent.context_from)
                                        .order_by(col(Message.id))).all())

    def run(self) -> TurnResult:
        if self.incoming.speaker is not None:
            self.core.meet(self.incoming.speaker, self.human_preset)
        self.first = self._add("user", self.incoming.text, kind=self.incoming.kind)
        limit = self.r.limits.max_steps
        for step in range(1, limit + 1):
            self.result.steps = step
            completion = self._complete()
            follow_up = self._step(completion)
            if follow_up is None:
                break
            if step == limit:
                self._notice(f"The agent stopped after {limit} chained steps (the limit).")
                break
            self._add("user", follow_up[1], kind=follow_up[0])
        if not self.ctx.sent and not self.result.notice:
            self._notice("The agent did not send a reply this time.")
        self.result.replies = list(self.ctx.sent)
        return self.result

    def land(self, writer: Session) -> None:
        """Write the turn in `writer`, one short transaction. The agent row is updated first: that takes SQLite's
        write lock (a row lock on PostgreSQL), so two turns of one agent landing at once append one contiguous
        block each. Core memory edits are re-applied to the blocks as they are now, and the agent's summary is
        re-read, so what another turn landed meanwhile is never lost."""
        agent_id = int(self.agent.id or 0)
        writer.execute(update(Agent).where(col(Agent.id) == agent_id).values(updated_at=utcnow()))
        now = writer.exec(select(Agent.summary, Agent.context_from, Agent.pressure_alerted)
                          .where(Agent.id == agent_id)).one()
        self.core.reapply(writer)
        writer.add_all(self.new)
        if self.ctx.schedules is not None:
            self.ctx.schedules.land(writer)
        writer.flush()
        values = self._agent_changes(now.summary, now.context_from)
        if self.agent.pressure_alerted != self._started[2]:
            values["pressure_alerted"] = self.agent.pressure_alerted
        if values:
            writer.execute(update(Agent).where(col(Agent.id) == agent_id).values(**values))

    def _agent_changes(self, summary: str, context_from: int) -> dict[str, Any]:
        """The summary and window start this turn lands. When another turn summarized after this one started
        (another process), both summaries are kept and the window starts at the later cut."""
        if not self._summarized:
            return {}
        head = int(self._context_from.id or 0) if self._context_from is not None else self.agent.context_from
        if (summary, context_from) == self._started[:2]:
            return {"summary": self.agent.summary, "context_from": head}
        return {"summary": f"{summary}\n\n{self.agent.summary}".strip(), "context_from": max(head, context_from)}

    def undo(self) -> None:
        """The turn failed or was abandoned: nothing it wrote on the way stays."""
        self.session.rollback()  # the reading session: only releases its connection
        self.ctx.archival.undo()
        if self.ctx.schedules is not None:
            self.ctx.schedules.discard()

    # one step ------------------------------------------------------------------------------------------
    def _complete(self) -> Completion:
        try:
            return self.r.model.complete(self._prompt(), self.r.schemas, on_draft=self._draft)
        except ContextOverflow:
            # The endpoint counts more tokens than our estimate: summarize now and try once more.
            if not self._summarize(self._system(), at_most=self._history_tokens() // 2):
                raise
            return self.r.model.complete(self._prompt(), self.r.schemas, on_draft=self._draft)

    def _draft(self, text: str) -> None:
        self._emit(TurnEvent("draft", text))

    def _step(self, completion: Completion) -> tuple[str, str] | None:
        """Record the model's answer, run its tools; return the next input (kind, text) or None to yield."""
        calls, content = completion.tool_calls, completion.content
        if completion.finish_reason == "length" and calls:
            calls, dropped = salvage_cut(calls)
            if dropped and not calls:
                self._record(content, [])
                self._notice(CUT_CALL)
                return None
        if not calls:
            decision = self.policy.plain(content, bool(self.ctx.sent), completion.finish_reason == "length")
            if decision.kind != "reply":
                self._record(content, [])
                return self._decided(decision)
            content, calls = "", [reply_call(decision.text)]
        failed, heartbeat = self._run_calls(self._record(content, calls))
        pressure = self._pressure()
        if pressure is not None:
            return pressure
        if failed:
            return "heartbeat", prompts.FAILED
        if heartbeat:
            return "heartbeat", prompts.HEARTBEAT
        return self._decided(self.policy.after_tools(bool(self.ctx.sent)))

    def _decided(self, decision: Decision) -> tuple[str, str] | None:
        if decision.kind == "nudge":
            return "heartbeat", prompts.NO_REPLY_YET  # a forgotten heartbeat must not leave people unanswered
        if decision.kind == "notice":
            self._notice(decision.text)
        return None

    def _record(self, content: str, calls: list[ToolCall]) -> list[ToolCall]:
        """Store the step (an empty one is not stored: replaying it breaks strict servers); ids for calls."""
        calls = [c if c.id else ToolCall(f"call_{uuid.uuid4().hex[:12]}", c.name, c.arguments) for c in calls]
        if content.strip() or calls:
            stored = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
            self._add("assistant", content, tool_calls=json.dumps(stored, ensure_ascii=False) if calls else "")
        if content.strip():
            self._emit(TurnEvent("thought", content.strip()))
        return calls

    def _run_calls(self, calls: list[ToolCall]) -> tuple[bool, bool]:
        failed = heartbeat = False
        for call in calls:
            ok, wants_more = self._call(call)
            failed |= not ok
            heartbeat |= wants_more
        return failed, heartbeat

    def _pressure(self) -> tuple[str, str] | None:
        budget = self.r.limits.budget
        fixed, history = self._fixed_tokens(self._system()), self._history_tokens()
        if history > budget.pressure_at * budget.room(fixed) and not self.agent.pressure_alerted:
            self.agent.pressure_alerted = True
            percent = round(100 * (fixed + history) / budget.window)
            return "alert", prompts.PRESSURE.format(percent=percent)
        return None

    def _call(self, call: ToolCall) -> tuple[bool, bool]:
        """Run one tool call and record its result. Returns (succeeded, asked for a heartbeat)."""
        wants_more = False
        tool = self.r.tools.get(call.name)
        try:
            if tool is None:
                raise ToolFailure(f"There is no tool named {call.name!r}. Tools: {', '.join(self.r.tools)}.")
            args = _parse_arguments(call)
            wants_more = heartbeat_requested(args) and tool.chains
            sent_before = len(self.ctx.sent)
            output = tool.call(self.ctx, args)
            ok = True
            for text in self.ctx.sent[sent_before:]:
                self._emit(TurnEvent("reply", text))
        except ToolFailure as exc:
            output, ok = str(exc), False
        except Exception as exc:  # a bug in a tool: the model hears about it and the turn goes on
            log.exception("tool %s raised", call.name)
            output, ok = f"{call.name} raised {exc.__class__.__name__}: {exc}", False
        output = self._truncate(output, tool is not None and tool.paged)
        if call.name != "send_message":
            self._emit(TurnEvent("tool", f"{call.name}({call.arguments}) -> {'OK' if ok else 'Failed'}", call.name))
        body = {"status": "OK" if ok else "Failed", "message": output, "time": _now()}
        self._add("tool", json.dumps(body, ensure_ascii=False), tool_call_id=call.id, name=call.name)
        return ok, wants_more

    def _truncate(self, output: str, paged: bool) -> str:
        cap = self.r.limits.max_tool_output
        if paged:  # a search page is sized by its paging; cap it only at about a quarter of the window
            cap = max(cap, self.r.limits.budget.usable)
        if len(output) <= cap:
            return output
        return output[:cap] + f"... [truncated: {len(output) - cap} more characters; ask for a narrower result]"

    # context -------------------------------------------------------------------------------------------
    def _system(self) -> str:
        """Instructions, core memory, summary and sources, rendered once a turn so that every step extends the
        previous request (a server's prompt cache then covers it). A core memory edit shows from the next turn
        on; within the turn the model has its own call and the tool's answer."""
        if self._system_text is None:
            self._system_text = self._render_system()
        return self._system_text

    def _render_system(self) -> str:
        agent = self.agent
        sources = [s.name for s in attached_sources(self.session, int(agent.id or 0))]
        summary = prompts.SUMMARY_HEADER.format(summary=agent.summary) if agent.summary else ""
        return prompts.SYSTEM.format(name=agent.name, blocks=self.core.render(None),
                                     summary=summary, sources=", ".join(sources) or "none")

    def _turn_facts(self) -> dict[str, str]:
        """What changes from turn to turn rides inside the turn's first input, not the system prompt: the
        speaking person's block (channels alternate speakers) and the counts."""
        if self._facts is None:
            total = recall.count(self.session, int(self.agent.id or 0)) + len(self.new)
            counts = prompts.FACTS.format(messages=total, hidden=max(0, total - len(self.window)),
                                          archival=self._archival_count())
            person = self.core.render_person(self.incoming.speaker)
            self._facts = {"human": person, "context": counts} if person else {"context": counts}
        return self._facts

    def _facts_tokens(self) -> int:
        return sum(count_tokens(v) for v in self._turn_facts().values())

    def _archival_count(self) -> int:
        """Counted once per turn and again after an insert: it is a round trip to Milvus."""
        written = len(self.ctx.archival.written)
        if not written and not self.agent.archival_revision:
            return 0  # every insert bumps the revision first: nothing was ever saved, no round trip to Milvus
        if self._archived is None or self._archived[0] != written:
            try:
                self._archived = (written, self.ctx.archival.count())
            except Exception:  # the count is informative only; never fail a turn over it
                log.debug("archival count failed", exc_info=True)
                self._archived = (written, 0)
        return self._archived[1]

    def _fixed_tokens(self, system: str) -> int:
        return count_tokens(system) + self.r.schema_tokens + self._facts_tokens()

    def _history_tokens(self) -> int:
        return sum(self._size(m) for m in self.window)

    def _size(self, message: Message) -> int:
        """Tokens of one message, counted once per turn (messages do not change within a turn)."""
        key = ("new", id(message)) if message.id is None else ("row", message.id)  # new ones live all turn
        if key not in self._sizes:
            self._sizes[key] = message_tokens(message)
        return self._sizes[key]

    def _prompt(self) -> list[dict[str, Any]]:
        system = self._system()
        if self._fixed_tokens(system) + self._history_tokens() > self.r.limits.budget.limit:
            self._summarize(system)
            system = self._system()
        memory = count_tokens(self.core.render(None)) + count_tokens(self._turn_facts().get("human", ""))
        self.fixed = self._fixed_tokens(system)
        self.result.prompt_parts.append({"system": count_tokens(system) + self._facts_tokens() - memory,
                                         "memory": memory,
                                         "tools": self.r.schema_tokens, "history": self._history_tokens()})
        return prompt_messages(system, self.window, self._turn_facts(), self.first)

    def _summarize(self, system: str, at_most: int | None = None) -> bool:
        """Summarize the oldest messages out of the window, keeping at most `at_most` tokens of messages if
        given; False when there was nothing to evict."""
        budget = self.r.limits.budget
        # Room for the new summary too, so the prompt after it is well under the line and stays there a while.
        fixed = self._fixed_tokens(system) + budget.summary_chars // 4
        keep = int(budget.keep_share * budget.room(fixed))
        keep = keep if at_most is None else min(keep, at_most)
        # Earlier turns go first: the question being answered stays in view unless this turn alone is too big.
        start = next((i for i, m in enumerate(self.window) if m is self.first), len(self.window) - 1)
        cut = choose_cut(self.window, keep, start)
        if cut == 0 or fixed + sum(self._size(m) for m in self.window[cut:]) > budget.limit:
            # This turn alone is too big: cut inside it, but keep the latest step with its tool results.
            latest = max((i for i, m in enumerate(self.window) if m.role == "assistant"), default=len(self.window))
            cut = choose_cut(self.window, keep, latest - 1)
        if cut == 0:
            return False
        evicted, self.window = self.window[:cut], self.window[cut:]
        self.agent.summary = summarize(self.r.model, self.agent, evicted, budget)
        self._system_text = None
        head = self.window[0]
        self._context_from = head if head.id is None else None  # its id is known once the turn lands
        self.agent.context_from = int(head.id or 0)
        self.agent.pressure_alerted = False
        self._summarized = True
        self._emit(TurnEvent("notice", f"Summarized {len(evicted)} older messages to free the context window."))
        return True

    # records -------------------------------------------------------------------------------------------
    def _add(self, role: str, content: str, **fields: Any) -> Message:
        speaker = self.incoming.speaker
        author = speaker.name if speaker and role == "user" and fields.get("kind", "message") == "message" else ""
        message = Message(agent_id=int(self.agent.id or 0), role=role, content=content, author=author,
                          author_id=speaker.id if author and speaker else "", thread=self.incoming.thread, **fields)
        self.new.append(message)
        self.window.append(message)
        return message

    def _emit(self, event: TurnEvent) -> None:
        self.result.events.append(event)
        try:
            self.on_event(event)
        except Exception:  # a broken display must not break the turn
            log.exception("event sink failed")

    def _notice(self, text: str) -> None:
        self.result.notice = text
        self._emit(TurnEvent("notice", text))


def _parse_arguments(call: ToolCall) -> dict[str, Any]:
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise ToolFailure(f"The arguments of {call.name} are not valid JSON ({exc.msg} at position {exc.pos}). "
                          "Call it again with a JSON object.") from exc
    if not isinstance(args, dict):
        raise ToolFailure(f"The arguments of {call.name} must be a JSON object.")
    return args


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _failure_notice(exc: LLMUnavailable, budget: Budget, fixed: int) -> str:
    if isinstance(exc, ContextOverflow):
        return overflow_notice(exc, budget.window, fixed) + " Your message was not processed."
    if isinstance(exc, ModelMisconfigured):  # retrying cannot help: say so, once, with the fix
        return f"{exc} Your message was not processed; send it again once the model is set up."
    return f"{exc} Your message was not processed; please send it again."
