"""Reading answers as servers send them, the error table, and summaries that are not summaries."""

from __future__ import annotations

import json

import pytest

from agent.answers import arguments_text, calls_in_content, partial_string, tool_name
from agent.llm_errors import OVERFLOW, PERMANENT, diagnose, error_text
from agent.prompts import SUMMARIZE
from agent.sse import StreamError, assemble
from agent.summary_check import digest, rejection

TOOLS = {"send_message", "archival_memory_search"}


@pytest.mark.parametrize("content", [
    '{"name": "send_message", "arguments": {"message": "hi"}}',
    '```json\n{"name": "send_message", "parameters": {"message": "hi"}}\n```',
    '<tool_call>\n{"name": "send_message", "arguments": {"message": "hi"}}\n</tool_call>',
    '<tool_call>{"name": "send_message", "arguments": {"message": "hi"}}',  # never closed
    'functions.send_message:{"message": "hi"}',
    '[TOOL_CALLS] [{"name": "send_message", "arguments": {"message": "hi"}}]',
    '<|python_tag|>{"name": "functions.send_message", "arguments": "{\\"message\\": \\"hi\\"}"}',
    '{"type": "function", "function": {"name": "send_message", "arguments": {"message": "hi"}}}',
])
def test_a_tool_call_written_into_the_content(content: str) -> None:
    thought, calls = calls_in_content(content, TOOLS)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("send_message", {"message": "hi"})]
    assert thought == ""


def test_the_thought_around_a_call_is_kept_and_unknown_json_is_left_alone() -> None:
    thought, calls = calls_in_content('Let me look. <tool_call>{"name": "archival_memory_search", "arguments": '
                                      '{"query": "tea"}}</tool_call>', TOOLS)
    assert thought == "Let me look." and calls[0].name == "archival_memory_search"
    text = 'The config is {"name": "launch_rockets", "arguments": {}} and {"a": 1}.'
    assert calls_in_content(text, TOOLS) == (text, [])


def test_arguments_in_every_shape_become_a_json_string() -> None:
    assert arguments_text({"message": "hi"}) == '{"message": "hi"}'
    assert arguments_text(None) == "{}" and arguments_text("") == "{}"
    assert json.loads(arguments_text(json.dumps(json.dumps({"a": 1})))) == {"a": 1}  # encoded twice
    assert arguments_text('{"a": tr') == '{"a": tr'  # malformed stays as written, for the model to fix
    assert tool_name("functions.send_message") == "send_message"


def test_partial_string_follows_a_streamed_message() -> None:
    assert partial_string('{"mess') is None
    assert partial_string('{"message": "Hel') == "Hel"
    assert partial_string('{"message": "say \\"hi\\" \\u00e9 and \\u00') == 'say "hi" é and '
    assert partial_string('{"message": "done", "x": 1}') == "done"


def test_stream_assembly_with_quirks() -> None:
    lines = [": keep-alive", "",
             'data: {"choices": [{"delta": {"role": "assistant", "content": "Thinking. "}}]}',
             'data: {"choices": [{"delta": {"tool_calls": [{"id": "c1", "function": {"name": "send_message", '
             '"arguments": "{\\"message\\": \\"He"}}]}}]}',
             'data: {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "llo\\"}"}}]}}]}',
             'data: {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}',
             'data: {"choices": [], "usage": {"prompt_tokens": 42}}', "data: [DONE]"]
    drafts: list[str] = []
    got = assemble(lines, drafts.append)
    assert got.content == "Thinking. " and got.finish_reason == "tool_calls" and got.usage == {"prompt_tokens": 42}
    assert [(c.id, c.name, json.loads(c.arguments)) for c in got.calls] == [("c1", "send_message",
                                                                              {"message": "Hello"})]
    assert drafts == ["He", "Hello"]
    with pytest.raises(StreamError):
        assemble(['data: {"error": {"message": "the request exceeds the available context size"}}'])


@pytest.mark.parametrize(("status", "body", "kind", "window"), [
    (400, {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in "
                      "9000 tokens.", "code": "context_length_exceeded"}, OVERFLOW, 8192),
    (400, {"message": "The decoder prompt (length 2100) is longer than the maximum model length of 2048."},
     OVERFLOW, 2048),
    (500, {"code": 500, "message": "the request exceeds the available context size. try increasing the context "
                                   "size or enable context shift", "n_ctx": 2048, "n_prompt_tokens": 2300},
     OVERFLOW, 2048),
    (500, {"message": "Context size has been exceeded."}, OVERFLOW, None),
    (400, "Trying to keep the first 2300 tokens when context the overflows. However, the model is loaded with "
          "context length of only 2048 tokens, which is not enough.", OVERFLOW, 2048),
    (400, {"message": "Requested tokens (2285) exceed context window of 2048"}, OVERFLOW, 2048),
    (400, {"message": "registry.ollama.ai/library/gemma3:4b does not support tools"}, PERMANENT, None),
    (500, {"message": "tools param requires --jinja flag"}, PERMANENT, None),
    (401, {"message": "Incorrect API key provided."}, PERMANENT, None),
    (422, {"detail": [{"msg": "Extra inputs are not permitted"}]}, PERMANENT, None),
    (503, {"message": "overloaded"}, "transient", None),
    (500, {"message": "upstream exploded"}, "transient", None),
])
def test_the_error_table(status: int, body: object, kind: str, window: int | None) -> None:
    found = diagnose(status, error_text(body, "fallback"), body)
    assert (found.kind, found.window) == (kind, window)
    if kind == PERMANENT and status != 422:
        assert found.fix


def test_summaries_that_are_not_summaries() -> None:
    source = "Ann: I like green tea. you: Noted! Ann: my cat is called Miso. " * 3
    assert rejection("", SUMMARIZE, source) == "empty"
    assert "echo" in str(rejection(SUMMARIZE, SUMMARIZE, source))
    assert "longer" in str(rejection("blah " * 100, SUMMARIZE, source))
    assert rejection("Ann likes green tea; her cat is Miso.", SUMMARIZE, source) is None
    made = digest("Earlier: Ann joined.", ["Ann: I like green tea.", "you: Noted!"], 5, 400)
    assert made.startswith("Earlier: Ann joined.") and "green tea" in made and "5 earlier messages" in made
    assert len(digest("", ["x" * 90] * 50, 50, 400)) <= 400
