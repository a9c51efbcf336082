"""Fakes that speak real wire protocols on 127.0.0.1: OpenAI-compatible chat/embeddings, Slack, Discord."""

from tests.fakes.openai_server import *  # noqa: F403
from tests.fakes.openai_server import __all__  # noqa: F401
