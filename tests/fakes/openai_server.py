"""A fake OpenAI-compatible HTTP server for tests, spoken to by the real `openai` client.

    with FakeOpenAI() as fake:
        fake.script(tool_call("core_memory_append", name="human", content="likes tea"), reply("done"))
        client = openai.OpenAI(base_url=fake.base_url, api_key="test")
        ...

Every call to POST /v1/chat/completions pops one scripted reply (FIFO); when the queue is empty `fake.default`
answers. It only ever binds 127.0.0.1 and answers at once unless a `delay` is scripted.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeAlias

__all__ = [
    "Delay",
    "ErrorReply",
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "ToolCall",
    "default_reply",
    "delay",
    "error",
    "fake_embedding",
    "last_user_text",
    "raw_arguments",
    "reply",
    "tool_call",
]

JSON = dict[str, Any]


# --------------------------------------------------------------------------------------------------- reply model


@dataclass(frozen=True)
class ToolCall:
    """One function call in an assistant message; `arguments` is sent verbatim (it is a JSON *string*)."""

    name: str
    arguments: str
    id: str | None = None  # generated ("call_<n>") when None


@dataclass(frozen=True)
class Reply:
    """An assistant message: optional content (the "thought") and zero or more tool calls."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None  # "tool_calls" if there are tool calls, else "stop", unless given


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error with OpenAI's error JSON body."""

    status: int
    message: str
    type: str
    code: str | None = None
    retry_after: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None  # sent verbatim instead of OpenAI's error JSON (other servers' shapes)


@dataclass(frozen=True)
class Delay:
    """Sleep `seconds`, then answer with `then` (None: whatever `fake.default` answers)."""

    seconds: float
    then: ReplyLike | None = None


# A scripted answer: a built reply, an error, a delay, a bare string (= plain content), or a callable
# `fn(request_json) -> ReplyLike` for dynamic answers.
ReplyLike: TypeAlias = Reply | ErrorReply | Delay | str | Callable[[JSON], "ReplyLike"]

ToolCallSpec: TypeAlias = ToolCall | Reply | tuple[str, Mapping[str, Any] | str]


def _tool_calls(specs: Iterable[ToolCallSpec]) -> tuple[ToolCall, ...]:
    calls: list[ToolCall] = []
    for spec in specs:
        if isinstance(spec, ToolCall):
            calls.append(spec)
        elif isinstance(spec, Reply):  # e.g. reply(tool_calls=[raw_arguments(...), ("x", {...})])
            calls.extend(spec.tool_calls)
        else:
            name, args = spec
            arguments = args if isinstance(args, str) else json.dumps(dict(args))
            calls.append(ToolCall(name=name, arguments=arguments))
    return tuple(calls)


def reply(
    content: str | None = None,
    tool_calls: Iterable[ToolCallSpec] | None = None,
    *,
    finish_reason: str | None = None,
) -> Reply:
    """An assistant message. `tool_calls` items: `("name", {args})`, `("name", "raw json string")`, a `ToolCall`,
    or a `Reply` whose tool calls are merged in (so `raw_arguments(...)` can be mixed with normal calls)."""
    return Reply(content=content, tool_calls=_tool_calls(tool_calls or ()), finish_reason=finish_reason)


def tool_call(name: str, /, **args: Any) -> Reply:
    """A reply with no content and exactly one call of `name` with `args` (serialised to a JSON string)."""
    return reply(tool_calls=[(name, args)])


def raw_arguments(name: str, arguments: str, content: str | None = None) -> Reply:
    """A reply with one call of `name` whose arguments string is sent verbatim (e.g. malformed JSON on purpose)."""
    return Reply(content=content, tool_calls=(ToolCall(name=name, arguments=arguments),))


_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def error(
    status: int,
    message: str = "fake error",
    retry_after: float | None = None,
    *,
    type: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ErrorReply:
    """Answer with HTTP `status` and `{"error": {"message", "type", "param", "code"}}`.

    With `retry_after` (seconds, may be fractional) the `retry-after` and `retry-after-ms` headers are set;
    `headers` adds more (e.g. `{"x-should-retry": "false"}`)."""
    default_type, default_code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "api_error", None))
    return ErrorReply(
        status=status,
        message=message,
        type=type or default_type,
        code=code if code is not None else default_code,
        retry_after=retry_after,
        headers=tuple((headers or {}).items()),
    )


def delay(seconds: float, then: ReplyLike | None = None) -> Delay:
    """Sleep `seconds` before answering with `then` (default: `fake.default`), e.g. to trigger client time-outs."""
    return Delay(seconds=seconds, then=then)


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}, ...]
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def last_user_text(request: JSON) -> str:
    """The text of the last `role: user` message of a chat request ("" if there is none)."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def default_reply(request: JSON) -> ReplyLike:
    """The unscripted behaviour: plain "ok" after a tool result or when no tools are offered; otherwise call
    `send_message` with `{"message": "echo: <last user text>"}`, so automated conversations finish by themselves."""
    messages = request.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") in ("tool", "function") or not request.get("tools"):
        return reply("ok")
    return tool_call("send_message", message=f"echo: {last_user_text(request)}")


def fake_embedding(text: str, dim: int = 8) -> list[float]:
    """A deterministic, unit-normalised vector derived from sha256(text) (stable across processes)."""
    if dim <= 0:
        raise ValueError("dim must be positive")
    values: list[float] = []
    for counter in itertools.count():
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for (word,) in struct.iter_unpack("<I", digest):
            values.append(word / 0xFFFFFFFF * 2.0 - 1.0)
        if len(values) >= dim:
            break
    values = values[:dim]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


# --------------------------------------------------------------------------------------------------- recording


class _Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (keys are stored lower-cased)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: JSON
    headers: Mapping[str, str]
    at: float = field(default_factory=time.monotonic)


class _StopServing(Exception):
    pass


# --------------------------------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out hang up on us; that is expected, not worth a traceback.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two sends: with Nagle on, each answer would wait ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.startswith("/v1/"):
            path = path[3:]
        raw = self._read_body()
        body: JSON = {}
        bad_json = False
        if raw:
            try:
                parsed = json.loads(raw)
                body = parsed if isinstance(parsed, dict) else {"_body": parsed}
                bad_json = not isinstance(parsed, dict)
            except ValueError:
                body, bad_json = {"_raw": raw.decode("utf-8", "replace")}, True
        fake._record(RecordedRequest(method, path, body, _Headers(self.headers.items())))
        try:
            if fake.api_key is not None and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                self._send_error(error(401, "Incorrect API key provided."))
            elif bad_json:
                self._send_error(error(400, "The request body is not a JSON object."))
            elif method == "POST" and path == "/chat/completions":
                self._chat(body)
            elif method == "POST" and path == "/embeddings":
                self._embeddings(body)
            elif method == "GET" and path == "/models":
                self._send_json(200, {"object": "list", "data": [fake._model_json(m) for m in fake.models]})
            elif method == "GET" and path.startswith("/models/"):
                model = path[len("/models/"):]
                if model in fake.models:
                    self._send_json(200, fake._model_json(model))
                else:
                    self._send_error(error(404, f"The model '{model}' does not exist"))
            else:
                self._send_error(error(404, f"Unknown request URL: {method} {self.path}", code="unknown_url"))
        except _StopServing:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True  # the client gave up (time-out) or the fake was closed

    # ----------------------------------------------------------------------------------------- endpoints

    def _chat(self, body: JSON) -> None:
        fake = self.server.fake
        if not isinstance(body.get("messages"), list) or not body.get("messages"):
            self._send_error(error(400, "'messages' must be a non-empty array.", code="invalid_value"))
            return
        from tests.fakes import model_modes as modes

        problem = modes.request_error(body) or modes.mode_error(fake.mode, body, fake.window)
        if problem is not None:
            fake._next_reply(body)  # the scripted answer is used up, as a real server would never give it
            self._send_error(problem)
            return
        answer = fake._next_reply(body)
        while isinstance(answer, Delay):
            if fake._stopped.wait(answer.seconds):
                raise _StopServing
            answer = fake._resolve(answer.then if answer.then is not None else fake.default, body)
        if isinstance(answer, ErrorReply):
            self._send_error(answer)
            return
        assert isinstance(answer, Reply)
        completion = fake._completion_json(body, modes.reshape(fake.mode, answer))
        wire = modes.wire_json(fake.mode, fake.window, json.loads(json.dumps(completion)))
        if fake.mode == "stream-quirks" and body.get("stream"):
            self._send_events(modes.quirky_stream(wire))
        elif body.get("stream") or fake.mode == "sse-unasked":
            self._send_stream(body, wire)
        else:
            self._send_json(200, wire)

    def _embeddings(self, body: JSON) -> None:
        fake = self.server.fake
        fake._embedding_turnstile()
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            self._send_error(error(400, "'input' must be a non-empty string or array.", code="invalid_value"))
            return
        dim = int(body.get("dimensions") or fake.dim)
        data: list[JSON] = []
        tokens = 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else json.dumps(item)
            tokens += _count_tokens(text)
            vector = fake_embedding(text, dim)
            encoded: list[float] | str = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        self._send_json(200, {
            "object": "list",
            "data": data,
            "model": body.get("model") or fake.models[0],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    # ----------------------------------------------------------------------------------------- writing

    def _send_json(self, status: int, payload: JSON, headers: Iterable[tuple[str, str]] = ()) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, err: ErrorReply) -> None:
        headers = list(err.headers)
        if err.retry_after is not None:
            headers += [("retry-after", f"{err.retry_after:g}"), ("retry-after-ms", f"{err.retry_after * 1000:g}")]
        if err.body is not None:
            self._send_raw(err.status, err.body.encode(), headers)
            return
        payload = {"error": {"message": err.message, "type": err.type, "param": None, "code": err.code}}
        self._send_json(err.status, payload, headers)

    def _send_raw(self, status: int, data: bytes, headers: Iterable[tuple[str, str]] = (),
                  content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_stream(self, body: JSON, completion: JSON) -> None:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self._send_events([b"data: " + json.dumps(chunk).encode() + b"\n\n"
                           for chunk in _stream_chunks(completion, include_usage)] + [b"data: [DONE]\n\n"])

    def _send_events(self, events: list[bytes]) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            self.wfile.write(event)
        self.wfile.flush()


def _count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _pieces(text: str, size: int = 16) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _stream_chunks(completion: JSON, include_usage: bool) -> Iterator[JSON]:
    choice = completion["choices"][0]
    message = choice["message"]
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: JSON, finish_reason: str | None = None) -> JSON:
        out = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])
        if include_usage:
            out["usage"] = None
        return out

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if message.get("content"):
        for piece in _pieces(message["content"]):
            yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls") or []):
        fn = call["function"]
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": fn["name"], "arguments": ""}}]})
        if fn["arguments"]:  # an object (mode arguments-object) goes out whole
            pieces = _pieces(fn["arguments"]) if isinstance(fn["arguments"], str) else [fn["arguments"]]
            for piece in pieces:
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield dict(base, choices=[], usage=completion["usage"])


# --------------------------------------------------------------------------------------------------- the fake


class FakeOpenAI:
    """A fake OpenAI API on 127.0.0.1:<free port>, serving until `close()` (or the end of a `with` block)."""

    def __init__(
        self,
        *,
        dim: int = 8,
        models: Iterable[str] = ("fake-model", "fake-embedding"),
        api_key: str | None = None,
        default: Callable[[JSON], ReplyLike] | None = None,
        mode: str = "openai",
        window: int | None = None,
    ) -> None:
        self.dim = dim
        self.mode = mode  # how the server and its model behave: tests/fakes/model_modes.py lists the modes
        self.window = window  # the model's context window in the fake's token count (len/4), for overflow modes
        self.models: list[str] = list(models) or ["fake-model"]
        self.api_key = api_key  # when set, requests without "Authorization: Bearer <api_key>" get a 401
        self.default: Callable[[JSON], ReplyLike] = default or default_reply
        self._queue: deque[ReplyLike] = deque()
        self._log: list[RecordedRequest] = []
        self._responses: list[JSON] = []
        self._errors: list[str] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._conns: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._embedding_gate = threading.Event()
        self._embedding_gate.set()
        self._embedding_passes = 0
        self._embedding_waiting = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port: int = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeOpenAI:{self.port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving: wakes scripted delays, drops open connections, frees the port. Idempotent."""
        self._embedding_gate.set()
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------------------------------- scripting

    def hold_embeddings(self, after: int = 0) -> None:
        """After `after` more embedding requests, the next ones wait (a load stays mid-way) until
        `release_embeddings()`; `held` counts those waiting."""
        with self._cond:
            self._embedding_passes = after
            self._embedding_gate.clear()

    @property
    def held(self) -> int:
        with self._cond:
            return self._embedding_waiting

    def _embedding_turnstile(self) -> None:
        with self._cond:
            if self._embedding_gate.is_set() or self._embedding_passes > 0:
                self._embedding_passes = max(0, self._embedding_passes - 1)
                return
            self._embedding_waiting += 1
        self._embedding_gate.wait(120)
        with self._cond:
            self._embedding_waiting -= 1

    def release_embeddings(self) -> None:
        self._embedding_gate.set()

    def script(self, *replies: ReplyLike) -> FakeOpenAI:
        """Append replies to the FIFO queue; each chat-completions call pops one."""
        with self._cond:
            self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._cond:
            return len(self._queue)

    def reset(self) -> None:
        """Forget queued replies and everything recorded."""
        with self._cond:
            self._queue.clear()
            self._log.clear()
            self._responses.clear()
            self._errors.clear()

    # ------------------------------------------------------------------------------------------- recording

    @property
    def log(self) -> list[RecordedRequest]:
        """Every request (method, path without /v1, body, headers), in arrival order."""
        with self._cond:
            return list(self._log)

    @property
    def requests(self) -> list[JSON]:
        """The parsed JSON bodies of every request (all endpoints; GETs record {}), in arrival order."""
        return [r.body for r in self.log]

    @property
    def headers(self) -> list[Mapping[str, str]]:
        """The headers of every request (case-insensitive lookup), parallel to `requests`."""
        return [r.headers for r in self.log]

    @property
    def calls(self) -> int:
        """Number of requests received so far (all endpoints, retries included)."""
        with self._cond:
            return len(self._log)

    @property
    def chat_requests(self) -> list[JSON]:
        """Bodies of POST /v1/chat/completions requests only."""
        return [r.body for r in self.log if r.path == "/chat/completions"]

    @property
    def embedding_requests(self) -> list[JSON]:
        """Bodies of POST /v1/embeddings requests only."""
        return [r.body for r in self.log if r.path == "/embeddings"]

    @property
    def responses(self) -> list[JSON]:
        """The successful chat.completion bodies sent (also for streamed answers), in order."""
        with self._cond:
            return list(self._responses)

    @property
    def errors(self) -> list[str]:
        """Exceptions raised by callable replies / `default` (each was answered with a 500)."""
        with self._cond:
            return list(self._errors)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[JSON]:
        """Block until at least `n` requests have arrived; return their bodies. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._log) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"FakeOpenAI got {len(self._log)} of {n} requests in {timeout} s")
                self._cond.wait(left)
            return [r.body for r in self._log]

    def embed(self, text: str, dim: int | None = None) -> list[float]:
        """The vector the fake returns for `text` (handy for expected values)."""
        return fake_embedding(text, dim or self.dim)

    # ------------------------------------------------------------------------------------------- internals

    def _record(self, request: RecordedRequest) -> None:
        with self._cond:
            self._log.append(request)
            self._cond.notify_all()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._cond:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _next_reply(self, body: JSON) -> Reply | ErrorReply | Delay:
        with self._cond:
            scripted = self._queue.popleft() if self._queue else None
        return self._resolve(scripted if scripted is not None else self.default, body)

    def _resolve(self, answer: ReplyLike, body: JSON) -> Reply | ErrorReply | Delay:
        for _ in range(100):
            if isinstance(answer, (Reply, ErrorReply, Delay)):
                return answer
            if isinstance(answer, str):
                return Reply(content=answer)
            if callable(answer):
                try:
                    answer = answer(body)
                except Exception as exc:  # reported to the test via `errors` and a 500
                    with self._cond:
                        self._errors.append(f"{type(exc).__name__}: {exc}")
                    return error(500, f"FakeOpenAI reply function raised {type(exc).__name__}: {exc}",
                                 headers={"x-should-retry": "false"})
                continue
            break
        with self._cond:
            self._errors.append(f"not a reply: {answer!r}")
        return error(500, f"FakeOpenAI: not a reply: {answer!r}", headers={"x-should-retry": "false"})

    def _model_json(self, model: str) -> JSON:
        return {"id": model, "object": "model", "created": 1700000000, "owned_by": "fake-openai"}

    def _completion_json(self, body: JSON, answer: Reply) -> JSON:
        message: JSON = {"role": "assistant", "content": answer.content, "refusal": None, "annotations": []}
        if answer.tool_calls:
            with self._cond:
                ids = [call.id or f"call_{next(self._ids)}" for call in answer.tool_calls]
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call_id, call in zip(ids, answer.tool_calls)
            ]
        finish = answer.finish_reason or ("tool_calls" if answer.tool_calls else "stop")
        prompt_tokens = _count_tokens(json.dumps(body.get("messages"))) + _count_tokens(json.dumps(body.get("tools")))
        completion_tokens = _count_tokens(answer.content or "") + sum(
            _count_tokens(c.name + c.arguments) for c in answer.tool_calls)
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.models[0],
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        with self._cond:
            self._responses.append(completion)
        return completion
