"""Test doubles that speak real wire protocols (e.g. a fake OpenAI-compatible HTTP server)."""

from tests.fakes.openai_server import (
    Delay,
    ErrorReply,
    FakeOpenAI,
    RecordedRequest,
    Reply,
    ReplyLike,
    ToolCall,
    default_reply,
    delay,
    error,
    fake_embedding,
    last_user_text,
    raw_arguments,
    reply,
    tool_call,
)

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
