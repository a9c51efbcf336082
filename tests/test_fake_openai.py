"""The fake OpenAI server, exercised through the real `openai` client."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

import openai
import pytest

from tests.fakes import FakeOpenAI, delay, error, raw_arguments, reply, tool_call

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "send_message",
            "description": "Send a message to the user.",
            "parameters": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "core_memory_append",
            "description": "Append to a core memory block.",
            "parameters": {
                "type": "object",
                "properties": {"label": {"type": "string"}, "content": {"type": "string"}},
                "required": ["label", "content"],
            },
        },
    },
]



def client(fake: FakeOpenAI, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5.0)
    return openai.OpenAI(base_url=fake.base_url, api_key="test", **kwargs)


def chat(c: openai.OpenAI, text: str = "hi", tools: list[Any] | None = None, **kwargs: Any) -> Any:
    messages: list[Any] = [{"role": "system", "content": "You are a test."}, {"role": "user", "content": text}]
    if tools is not None:
        kwargs["tools"] = tools
    return c.chat.completions.create(model="gpt-test", messages=messages, **kwargs)


def test_binds_loopback_and_closes() -> None:
    fake = FakeOpenAI()
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
    assert fake._server.server_address[0] == "127.0.0.1"
    fake.close()
    fake.close()  # idempotent
    with pytest.raises(openai.APIConnectionError):
        client(fake).models.list()


def test_scripted_tool_call_round_trips(fake: FakeOpenAI) -> None:
    fake.script(reply("Saving that.", tool_calls=[("core_memory_append", {"label": "human", "content": "likes tea"}),
                                                  ("send_message", {"message": "noted"})]))
    completion = chat(client(fake), "I like tea", TOOLS)

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Saving that."
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 2
    assert [c.type for c in calls] == ["function", "function"]
    assert calls[0].function.name == "core_memory_append"
    assert json.loads(calls[0].function.arguments) == {"label": "human", "content": "likes tea"}
    assert calls[1].function.name == "send_message"
    assert json.loads(calls[1].function.arguments) == {"message": "noted"}
    assert calls[0].id.startswith("call_") and calls[0].id != calls[1].id
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    assert fake.pending == 0


def test_tool_call_helper_and_plain_content(fake: FakeOpenAI) -> None:
    fake.script(tool_call("send_message", message="hello"), reply("just text"), "bare string")
    c = client(fake)
    first = chat(c, tools=TOOLS).choices[0]
    assert first.message.content is None
    assert first.message.tool_calls is not None
    assert first.message.tool_calls[0].function.name == "send_message"
    assert json.loads(first.message.tool_calls[0].function.arguments) == {"message": "hello"}
    for expected in ("just text", "bare string"):
        choice = chat(c, tools=TOOLS).choices[0]
        assert (choice.message.content, choice.message.tool_calls, choice.finish_reason) == (expected, None, "stop")


def test_malformed_arguments_arrive_verbatim(fake: FakeOpenAI) -> None:
    fake.script(raw_arguments("send_message", 'not json{"message": '),
                reply(tool_calls=[raw_arguments("core_memory_append", "{'single': 'quotes'}"), ("send_message", {})]))
    c = client(fake)
    calls = chat(c, tools=TOOLS).choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.name == "send_message"
    assert calls[0].function.arguments == 'not json{"message": '
    calls = chat(c, tools=TOOLS).choices[0].message.tool_calls
    assert calls is not None
    assert [c.function.arguments for c in calls] == ["{'single': 'quotes'}", "{}"]


def test_429_with_retry_after_is_retried(fake: FakeOpenAI) -> None:
    fake.script(error(429, "Rate limit reached", retry_after=0.01), error(429, retry_after=0.01), reply("finally"))
    started = time.monotonic()
    completion = chat(client(fake, max_retries=2))
    assert completion.choices[0].message.content == "finally"
    assert time.monotonic() - started < 2  # the client honoured retry-after-ms instead of its 0.5 s backoff
    assert fake.calls == 3
    assert all(body["messages"][-1]["content"] == "hi" for body in fake.requests)


def test_429_error_shape(fake: FakeOpenAI) -> None:
    fake.script(error(429, "Slow down", retry_after=0.25))
    with pytest.raises(openai.RateLimitError) as info:
        chat(client(fake))
    err = info.value
    assert err.status_code == 429
    assert err.body == {"message": "Slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    assert err.response.headers["retry-after"] == "0.25"
    assert err.response.headers["retry-after-ms"] == "250"


def test_500_after_max_retries_raises(fake: FakeOpenAI) -> None:
    fake.script(*[error(500, "boom", retry_after=0.01)] * 3, reply("never reached"))
    with pytest.raises(openai.InternalServerError) as info:
        chat(client(fake, max_retries=2))
    assert info.value.status_code == 500
    assert "boom" in str(info.value)
    assert fake.calls == 3
    assert fake.pending == 1


def test_other_statuses_map_to_client_errors(fake: FakeOpenAI) -> None:
    fake.script(error(503, "overloaded", headers={"x-should-retry": "false"}), error(400, "bad request"))
    c = client(fake, max_retries=3)
    with pytest.raises(openai.InternalServerError):
        chat(c)
    with pytest.raises(openai.BadRequestError):
        chat(c)
    assert fake.calls == 2


def test_delay_beyond_timeout_raises_timeout(fake: FakeOpenAI) -> None:
    fake.script(delay(3.0, then=reply("too late")), delay(0.05, then=reply("in time")))
    c = client(fake, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(c)
    assert time.monotonic() - started < 2
    assert chat(c).choices[0].message.content == "in time"


def test_embeddings_shape_and_determinism(fake: FakeOpenAI) -> None:
    c = client(fake)
    result = c.embeddings.create(model="fake-embedding", input=["alpha", "beta", "alpha"])
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(v) == 8 for v in vectors)
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] == pytest.approx(vectors[2]) and vectors[0] != pytest.approx(vectors[1])
    assert vectors[0] == pytest.approx(fake.embed("alpha"), abs=1e-6)  # float32 over the wire (base64 by default)
    assert fake.embedding_requests[0]["encoding_format"] == "base64"

    floats = c.embeddings.create(model="fake-embedding", input="alpha", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(fake.embed("alpha"))
    assert result.usage.prompt_tokens > 0


def test_embeddings_dim_is_configurable() -> None:
    with FakeOpenAI(dim=384) as fake:
        c = client(fake)
        assert len(c.embeddings.create(model="m", input="x").data[0].embedding) == 384
        assert len(c.embeddings.create(model="m", input="x", dimensions=16).data[0].embedding) == 16


def test_models_endpoint(fake: FakeOpenAI) -> None:
    ids = [m.id for m in client(fake).models.list()]
    assert ids == ["fake-model", "fake-embedding"]


def test_default_echo_behaviour(fake: FakeOpenAI) -> None:
    c = client(fake)
    first = chat(c, "what is my name?", TOOLS).choices[0]
    assert first.finish_reason == "tool_calls"
    assert first.message.tool_calls is not None
    call = first.message.tool_calls[0]
    assert call.function.name == "send_message"
    assert json.loads(call.function.arguments) == {"message": "echo: what is my name?"}

    messages: list[Any] = [
        {"role": "user", "content": "what is my name?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"status": "OK"}'},
    ]
    after_tool = c.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS).choices[0]
    assert (after_tool.message.content, after_tool.message.tool_calls) == ("ok", None)

    no_tools = chat(c, "hello").choices[0]
    assert no_tools.message.content == "ok"

    content = [{"type": "text", "text": "multi"}, {"type": "text", "text": "part"}]
    parts: list[Any] = [{"role": "user", "content": content}]
    calls = c.chat.completions.create(model="m", messages=parts, tools=TOOLS).choices[0].message.tool_calls
    assert calls is not None
    echo = calls[0]
    assert echo.type == "function" and json.loads(echo.function.arguments) == {"message": "echo: multipart"}


def test_default_is_replaceable_and_callables_are_replies(fake: FakeOpenAI) -> None:
    fake.default = lambda body: reply(f"{len(body['messages'])} messages")
    fake.script(lambda body: tool_call("send_message", message=body["messages"][-1]["content"].upper()))
    c = client(fake)
    calls = chat(c, "shout", TOOLS).choices[0].message.tool_calls
    assert calls is not None and json.loads(calls[0].function.arguments) == {"message": "SHOUT"}
    assert chat(c).choices[0].message.content == "2 messages"


def test_failing_reply_function_is_reported(fake: FakeOpenAI) -> None:
    def broken(body: dict[str, Any]) -> Any:
        raise KeyError("nope")

    fake.script(broken)
    with pytest.raises(openai.InternalServerError):
        chat(client(fake, max_retries=2))
    assert fake.calls == 1  # x-should-retry: false
    assert fake.errors == ["KeyError: 'nope'"]


def test_requests_and_headers_are_recorded(fake: FakeOpenAI) -> None:
    c = client(fake)
    chat(c, "first", TOOLS, temperature=0.5)
    c.embeddings.create(model="fake-embedding", input="x")
    assert fake.calls == 2
    body = fake.requests[0]
    assert body["model"] == "gpt-test"
    assert body["temperature"] == 0.5
    assert body["messages"][-1] == {"role": "user", "content": "first"}
    assert [t["function"]["name"] for t in body["tools"]] == ["send_message", "core_memory_append"]
    assert fake.headers[0]["Authorization"] == "Bearer test"
    assert fake.headers[0]["authorization"] == "Bearer test"
    assert [r.path for r in fake.log] == ["/chat/completions", "/embeddings"]
    assert len(fake.chat_requests) == 1 and len(fake.embedding_requests) == 1
    assert len(fake.responses) == 1


def test_wait_for_requests_from_another_thread(fake: FakeOpenAI) -> None:
    c = client(fake)
    worker = threading.Thread(target=lambda: [chat(c, str(i)) for i in range(3)])
    worker.start()
    bodies = fake.wait_for_requests(3, timeout=5)
    worker.join()
    assert [b["messages"][-1]["content"] for b in bodies] == ["0", "1", "2"]
    with pytest.raises(TimeoutError):
        fake.wait_for_requests(4, timeout=0.05)


def test_concurrent_clients_each_get_one_reply(fake: FakeOpenAI) -> None:
    fake.script(*[reply(f"r{i}") for i in range(8)])
    c = client(fake)
    results: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        content = chat(c, str(i)).choices[0].message.content
        with lock:
            results.append(content or "")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"r{i}" for i in range(8))
    assert fake.calls == 8 and fake.pending == 0


def test_api_key_is_enforced_when_set() -> None:
    with FakeOpenAI(api_key="right") as fake:
        with pytest.raises(openai.AuthenticationError):
            chat(client(fake))
        good = openai.OpenAI(base_url=fake.base_url, api_key="right", max_retries=0)
        assert good.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices


def test_streaming(fake: FakeOpenAI) -> None:
    fake.script(reply("A thought that is longer than sixteen characters.",
                      tool_calls=[("send_message", {"message": "streamed hello"})]))
    stream = chat(client(fake), "s", TOOLS, stream=True, stream_options={"include_usage": True})
    content, name, arguments, finish, usage = "", "", "", None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                name += (call.function.name or "") if call.function else ""
                arguments += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    assert content == "A thought that is longer than sixteen characters."
    assert name == "send_message"
    assert json.loads(arguments) == {"message": "streamed hello"}
    assert finish == "tool_calls"
    assert usage is not None and usage.total_tokens > 0
    assert fake.requests[0]["stream"] is True


def test_unknown_route_is_a_404(fake: FakeOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client(fake).files.list()
