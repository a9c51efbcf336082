"""Where timed-event replies go: a registry of per-platform delivery functions, keyed by scope prefix.

An adapter registers one function for its platform when it starts and removes it when it stops:

    deliveries.register("slack", lambda target, text: client.chat_postMessage(
        channel=target.channel or target.user, thread_ts=target.thread or None, text=text))

The function is called from a worker thread (never an event loop), once per reply, with the reply's full
Markdown text: splitting at the platform's limit and escaping are the adapter's job, as for any reply. An
asyncio adapter hands the call to its loop: `asyncio.run_coroutine_threadsafe(send(...), loop).result(30)`.
A process runs the schedules of a platform only while a delivery is registered for it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.db.models import Agent
from agent.errors import UserError

_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,30}")


@dataclass(frozen=True)
class Target:
    """Where a schedule posts: a workspace scope ("slack:T1"), and a channel id there (or, for a direct-message
    agent, the person's user id in `user` and an empty channel), and a thread ("" for the channel itself)."""

    scope: str
    channel: str = ""
    thread: str = ""
    user: str = ""

    @property
    def platform(self) -> str:
        return platform_of(self.scope)


Deliver = Callable[[Target, str], None]


class DeliveryError(UserError):
    """No delivery is registered for a platform, or a platform name is not usable."""


def platform_of(scope: str) -> str:
    """The platform of a scope: "slack" for "slack:T1", "local" for "local"."""
    prefix = scope.split(":", 1)[0].lower()
    if not _PREFIX.fullmatch(prefix):
        raise DeliveryError(f"Scope {scope!r} does not start with a platform name (letters, digits, '_').")
    return prefix


def target_for(agent: Agent, thread: str = "") -> Target:
    """The target of an agent: "channel:C1" posts to channel C1, "dm:U1" to person U1, any other name (a
    console agent) to a channel of that name."""
    kind, _, ident = agent.name.partition(":")
    if kind == "channel" and ident:
        return Target(agent.scope, channel=ident, thread=thread)
    if kind == "dm" and ident:
        return Target(agent.scope, user=ident, thread=thread)
    return Target(agent.scope, channel=agent.name, thread=thread)


class DeliveryRegistry:
    def __init__(self) -> None:
        self._by_platform: dict[str, Deliver] = {}
        self._lock = threading.Lock()

    def register(self, platform: str, deliver: Deliver) -> None:
        """Make `deliver` the delivery of `platform` ("slack", "discord", "local"), replacing any other."""
        if not _PREFIX.fullmatch(platform):
            raise DeliveryError(f"{platform!r} is not a platform name (lower-case letters, digits, '_').")
        with self._lock:
            self._by_platform[platform] = deliver

    def unregister(self, platform: str) -> None:
        with self._lock:
            self._by_platform.pop(platform, None)

    def platforms(self) -> set[str]:
        with self._lock:
            return set(self._by_platform)

    def deliver(self, target: Target, text: str) -> None:
        with self._lock:
            deliver = self._by_platform.get(target.platform)
        if deliver is None:
            raise DeliveryError(f"No delivery is registered for {target.platform!r} in this process.")
        deliver(target, text)
