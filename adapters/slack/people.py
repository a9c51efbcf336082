"""Who is speaking: a Slack user id as a Speaker with the person's display name (users.info, cached)."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from adapters.slack.recent import Recent
from agent import Speaker

log = logging.getLogger(__name__)


class People:
    def __init__(self, ttl: float = 3600.0) -> None:
        self.ttl = ttl
        self._users: Recent[tuple[dict[str, Any], float]] = Recent(5_000)

    def speaker(self, client: WebClient, user_id: str) -> Speaker:
        return Speaker(id=user_id, name=self.name(client, user_id))

    def name(self, client: WebClient, user_id: str) -> str:
        user = self._user(client, user_id)
        if user is None:  # missing users:read or a deleted user: the id still works as a name
            return user_id
        profile = user.get("profile") or {}
        return str(profile.get("display_name") or profile.get("real_name") or user.get("real_name")
                   or user.get("name") or user_id)

    def is_admin(self, client: WebClient, user_id: str) -> bool:
        """A workspace admin or owner (users.info); False when Slack cannot say."""
        user = self._user(client, user_id)
        return bool(user and (user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner")))

    def _user(self, client: WebClient, user_id: str) -> dict[str, Any] | None:
        cached = self._users.get(user_id)
        if cached is not None and time.monotonic() - cached[1] < self.ttl:
            return cached[0]
        try:
            user: dict[str, Any] = client.users_info(user=user_id)["user"]
        except SlackApiError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc.response.get("error"))
            return cached[0] if cached else None
        self._users.put(user_id, (user, time.monotonic()))
        return user
