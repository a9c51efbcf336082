"""What happens when a step ends without a reply to people: one nudge at most, then the model's own words or
one notice that says what the model did wrong. Never a chain of nudges up to the step cap.

MEMBOT_REPLY_MODE:
  auto    (default) plain text with no tool call becomes the reply after one nudge: small models often answer
          in plain text, and a person should get those words rather than nothing
  strict  MemGPT's rule: only send_message reaches people; plain text stays an inner thought
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agent.answers import partial_string
from agent.llm import ToolCall

AUTO = "auto"
STRICT = "strict"
REPLY_MODES = (AUTO, STRICT)

CUT_NOTE = " … (cut: the answer reached the model's length limit, MEMBOT_MAX_TOKENS)"
CUT_CALL = ("The model's answer was cut at its length limit (MEMBOT_MAX_TOKENS) in the middle of a tool call, "
            "so nothing could be done with it. Raise MEMBOT_MAX_TOKENS or ask for something shorter.")
SILENT = ("The model answered twice with neither text nor a tool call. It may not do tool calling with this "
          "server setup: run `membot doctor` (docs/models.md lists the settings each server needs).")
STRICT_TEXT = ("The model wrote text but did not call send_message, so it stays an inner thought "
               "(MEMBOT_REPLY_MODE=strict). Set MEMBOT_REPLY_MODE=auto to deliver such answers, or pick a model "
               "with reliable tool calling.")


@dataclass(frozen=True)
class Decision:
    kind: str  # nudge | reply | notice | done
    text: str = ""


class ReplyPolicy:
    """Per turn: remembers whether the model was nudged and the last plain text it wrote."""

    def __init__(self, mode: str = AUTO) -> None:
        self.mode = mode
        self.nudged = False
        self._words = ""

    def plain(self, text: str, replied: bool, cut: bool) -> Decision:
        """The model answered with text only (no tool call)."""
        text = text.strip()
        if replied:
            return Decision("done")  # a closing thought after send_message
        if cut and self.mode == AUTO and text:
            return Decision("reply", text + CUT_NOTE)
        if cut:
            return Decision("notice", CUT_CALL if not text else STRICT_TEXT)
        self._words = text or self._words
        if not self.nudged:
            self.nudged = True
            return Decision("nudge")
        if self.mode == STRICT:
            return Decision("notice", STRICT_TEXT if self._words else SILENT)
        return Decision("reply", self._words) if self._words else Decision("notice", SILENT)

    def after_tools(self, replied: bool) -> Decision:
        """Tools ran without a heartbeat: nudge a model that has not replied (it forgot the heartbeat)."""
        if replied:
            return Decision("done")
        self.nudged = True
        return Decision("nudge")


def salvage_cut(calls: list[ToolCall]) -> tuple[list[ToolCall], bool]:
    """Calls of an answer cut at max_tokens: a send_message whose JSON was cut keeps the text that arrived,
    other cut calls are dropped. Returns the calls to run and whether one was dropped."""
    kept, dropped = [], False
    for call in calls:
        try:
            json.loads(call.arguments)
            kept.append(call)
            continue
        except ValueError:
            pass
        text = partial_string(call.arguments) if call.name == "send_message" else None
        if text:
            kept.append(ToolCall(call.id, call.name, json.dumps({"message": text + CUT_NOTE}, ensure_ascii=False)))
        else:
            dropped = True
    return kept, dropped


def reply_call(text: str) -> ToolCall:
    """Plain words delivered as if the model had called send_message, so history and recall show a reply."""
    return ToolCall("", "send_message", json.dumps({"message": text}, ensure_ascii=False))
