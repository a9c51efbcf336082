"""A fake Discord for tests: REST API, gateway (websocket) and CDN on 127.0.0.1, spoken to by the real discord.py.

    async with FakeDiscord() as fake:
        fake.install(monkeypatch)              # discord.py's Route.BASE and DEFAULT_GATEWAY now point here
        guild = fake.add_guild("Team")         # a server with #general, sent in GUILD_CREATE
        alice = fake.add_user("alice")
        ...                                    # log the bot in with fake.token and connect it
        await fake.post(guild.channel_id, alice, f"{fake.bot_mention} hi")
        await fake.wait_for(lambda: fake.bot_texts(some_thread_id))

Every REST call is recorded in `calls`. Messages the bot posts are stored per channel and echoed on the gateway
as MESSAGE_CREATE, as Discord does; `enforce_nonce` is honoured (a repeated nonce returns the first message).
`fail_next_sends("rate_limited", "lost")` makes the next message posts answer 429, or create the message and
then answer 502 (a lost response), to exercise discord.py's own retries.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import yarl
from aiohttp import WSMsgType, web

JSON = dict[str, Any]
API = "/api/v10"
ALL_PERMISSIONS = str((1 << 51) - 1)
EVERYONE_PERMISSIONS = str(((1 << 51) - 1) & ~(1 << 3))  # all but Administrator, which would void overwrites
MESSAGE_CONTENT_INTENT = 1 << 15
EPHEMERAL = 64


VIEW_CHANNEL = 1 << 10


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": with "; charset=utf-8" discord.py reads the body as text and login fails.
    return web.Response(status=status, body=json.dumps(payload).encode(),
                        headers={"Content-Type": "application/json", **(headers or {})})


def error(status: int, message: str, code: int = 0) -> web.Response:
    return json_response({"message": message, "code": code}, status)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class FakeGuild:
    id: int
    name: str
    channels: list[JSON] = field(default_factory=list)
    threads: list[JSON] = field(default_factory=list)
    roles: list[JSON] = field(default_factory=list)

    @property
    def channel_id(self) -> int:
        """The first text channel (#general)."""
        return int(self.channels[0]["id"])


class FakeDiscord:
    def __init__(self, token: str = "fake-bot-token", allow_message_content: bool = True) -> None:
        self.token = token
        self.allow_message_content = allow_message_content  # False: close the gateway with 4014 on IDENTIFY
        self._ids = itertools.count(1_230_000_000_000_000_001)
        self.users: dict[int, JSON] = {}
        self.bot_user = self.add_user("membot", bot=True)
        self.app_id = int(self.bot_user["id"])
        self.guilds: dict[int, FakeGuild] = {}
        self.messages: dict[int, list[JSON]] = defaultdict(list)  # channel id -> messages, oldest first
        self.files: dict[str, bytes] = {}  # CDN path -> bytes
        self.calls: list[Call] = []
        self.unknown: list[str] = []  # requests no route matched
        self.typing: list[int] = []  # channel ids, one per typing request
        self.downloads: list[str] = []  # CDN paths fetched
        self.threads_created: list[JSON] = []  # threads the bot opened
        self.callbacks: dict[int, list[JSON]] = defaultdict(list)  # interaction id -> callback bodies
        self.followups: dict[str, list[JSON]] = defaultdict(list)  # interaction token -> follow-up messages
        self.deleted_originals: list[str] = []  # interaction tokens whose deferred response the bot deleted
        self.permissions: dict[str, str] = {}  # user id -> their permissions in interactions (default: all)
        self.commands: dict[str, list[JSON]] = {}  # "global" or a guild id -> synced commands
        self.identifies = 0
        self.resumes = 0
        self._faults: deque[str] = deque()
        self._nonces: dict[tuple[int, str], JSON] = {}
        self._ws: web.WebSocketResponse | None = None
        self._seq = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # lifecycle -------------------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{path:.*}", self._cdn)
        for method, path, handler in self._routes():
            app.router.add_route(method, API + path, handler)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def install(self, monkeypatch: Any) -> None:
        """Point discord.py at this fake (undone by monkeypatch after the test)."""
        import discord

        monkeypatch.setattr(discord.http.Route, "BASE", self.url + API)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                            yarl.URL(f"ws://127.0.0.1:{self.port}/gateway"))

    # the world -------------------------------------------------------------------------------------------
    def snowflake(self) -> int:
        return next(self._ids)

    def add_user(self, name: str, bot: bool = False) -> JSON:
        uid = self.snowflake()
        user: JSON = {"id": str(uid), "username": name, "discriminator": "0", "global_name": name.title(),
                      "avatar": None, "bot": bot, "public_flags": 0}
        self.users[uid] = user
        return user

    @property
    def bot_mention(self) -> str:
        return f"<@{self.app_id}>"

    def add_guild(self, name: str, channels: tuple[str, ...] = ("general",), private: tuple[str, ...] = ()
                  ) -> FakeGuild:
        """A guild with text channels; those named in `private` deny View Channel to @everyone (whose role id is
        the guild's), as a private channel does."""
        gid = self.snowflake()
        guild = FakeGuild(gid, name)
        guild.roles = [
            {"id": str(gid), "name": "@everyone", "permissions": EVERYONE_PERMISSIONS, "position": 0, "color": 0,
             "hoist": False, "managed": False, "mentionable": False, "flags": 0},
            {"id": str(self.snowflake()), "name": "membot", "permissions": ALL_PERMISSIONS, "position": 1,
             "color": 0, "hoist": False, "managed": True, "mentionable": False, "flags": 0,
             "tags": {"bot_id": str(self.app_id)}},
        ]
        guild.channels = [{"id": str(self.snowflake()), "type": 0, "guild_id": str(gid), "name": channel,
                           "position": n, "nsfw": False, "parent_id": None,
                           "permission_overwrites": [{"id": str(gid), "type": 0, "allow": "0",
                                                      "deny": str(VIEW_CHANNEL)}] if channel in private else [],
                           "topic": None, "last_message_id": None, "rate_limit_per_user": 0, "flags": 0}
                          for n, channel in enumerate(channels)]
        self.guilds[gid] = guild
        return guild

    def channel_id(self, guild: FakeGuild, name: str) -> int:
        return next(int(c["id"]) for c in guild.channels if c["name"] == name)

    def member(self, user: JSON, with_user: bool = True) -> JSON:
        out: JSON = {"roles": [], "joined_at": now(), "deaf": False, "mute": False, "flags": 0, "nick": None,
                     "pending": False}
        if with_user:
            out["user"] = user
        return out

    def guild_json(self, guild: FakeGuild) -> JSON:
        return {"id": str(guild.id), "name": guild.name, "icon": None, "owner_id": str(self.app_id),
                "features": [], "roles": guild.roles, "emojis": [], "stickers": [], "member_count": 2,
                "members": [self.member(self.bot_user)], "channels": guild.channels, "threads": guild.threads,
                "presences": [], "voice_states": [], "stage_instances": [], "guild_scheduled_events": [],
                "soundboard_sounds": [], "large": False, "unavailable": False, "joined_at": now(),
                "premium_tier": 0, "preferred_locale": "en-US", "verification_level": 0, "mfa_level": 0,
                "default_message_notifications": 0, "explicit_content_filter": 0, "nsfw_level": 0,
                "system_channel_flags": 0, "afk_timeout": 300, "description": None}

    def thread_json(self, guild_id: int, parent_id: int, owner_id: int, name: str) -> JSON:
        return {"id": str(self.snowflake()), "type": 11, "guild_id": str(guild_id), "parent_id": str(parent_id),
                "owner_id": str(owner_id), "name": name, "last_message_id": None, "message_count": 0,
                "member_count": 1, "rate_limit_per_user": 0, "flags": 0, "total_message_sent": 0,
                "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": now(),
                                    "locked": False, "invitable": True, "create_timestamp": now()}}

    async def add_thread(self, guild: FakeGuild, parent_id: int, owner: JSON, name: str = "a thread",
                         announce: bool = True) -> int:
        """A thread a person opened, announced with THREAD_CREATE if the bot is connected and `announce`."""
        thread = self.thread_json(guild.id, parent_id, int(owner["id"]), name)
        guild.threads.append(thread)
        if self._ws is not None and announce:
            await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return int(thread["id"])

    def attachment(self, channel_id: int, filename: str, data: bytes, content_type: str = "") -> JSON:
        """An attachment object whose signed URL is served by the fake CDN."""
        aid = self.snowflake()
        path = f"attachments/{channel_id}/{aid}/{filename}"
        self.files[path] = data
        out: JSON = {"id": str(aid), "filename": filename, "size": len(data), "url": f"{self.url}/cdn/{path}?ex=1",
                     "proxy_url": f"{self.url}/cdn/{path}?ex=1&proxy=1"}
        if content_type:
            out["content_type"] = content_type
        return out

    def message_json(self, channel_id: int, author: JSON, content: str, guild_id: int | None = None,
                     attachments: list[JSON] | None = None, nonce: str | None = None) -> JSON:
        mentioned = [self.users[int(i)] for i in re.findall(r"<@!?(\d+)>", content) if int(i) in self.users]
        message: JSON = {"id": str(self.snowflake()), "channel_id": str(channel_id), "author": author,
                         "content": content, "timestamp": now(), "edited_timestamp": None, "tts": False,
                         "mention_everyone": False, "mentions": mentioned,
                         "mention_roles": re.findall(r"<@&(\d+)>", content), "attachments": attachments or [],
                         "embeds": [], "pinned": False, "type": 0, "flags": 0, "components": []}
        if guild_id is not None:
            message["guild_id"] = str(guild_id)
            message["member"] = self.member(author, with_user=False)
        if nonce is not None:
            message["nonce"] = nonce
        return message

    # what a person does ----------------------------------------------------------------------------------
    async def post(self, channel_id: int, author: JSON, content: str, attachments: list[JSON] | None = None,
                   dm: bool = False, reply_to: JSON | None = None) -> JSON:
        """A person (or another bot) posts a message: stored and sent to the bot as MESSAGE_CREATE. `reply_to`:
        a reply to that message, its author not pinged (type 19, message_reference, referenced_message)."""
        message = self.message_json(channel_id, author, content, None if dm else self._guild_of(channel_id),
                                    attachments)
        if reply_to is not None:
            message.update(type=19, referenced_message=reply_to, message_reference={
                "type": 0, "message_id": reply_to["id"], "channel_id": reply_to["channel_id"],
                **({"guild_id": message["guild_id"]} if "guild_id" in message else {})})
        self.messages[channel_id].append(message)
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    def dm_channel(self) -> int:
        return self.snowflake()

    async def interact(self, guild: FakeGuild | None, channel_id: int, user: JSON, command: str,
                       options: dict[str, str] | None = None, focused: str = "", dispatch: bool = True) -> JSON:
        """A slash command (or, with `focused`, an autocomplete request for that option)."""
        opts = [{"name": k, "type": 3, "value": v, **({"focused": True} if k == focused else {})}
                for k, v in (options or {}).items()]
        interaction: JSON = {
            "id": str(self.snowflake()), "application_id": str(self.app_id), "type": 4 if focused else 2,
            "data": {"id": str(self.snowflake()), "name": command, "type": 1, "options": opts},
            "channel_id": str(channel_id), "token": f"itoken-{self.snowflake()}", "version": 1,
            "app_permissions": ALL_PERMISSIONS, "locale": "en-US", "entitlements": [],
            "attachment_size_limit": 26_214_400,
        }
        if guild is not None:
            channel = next((c for c in guild.channels + guild.threads if int(c["id"]) == channel_id), None)
            interaction.update({"guild_id": str(guild.id), "guild_locale": "en-US", "context": 0,
                                "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
                                "channel": channel, "authorizing_integration_owners": {"0": str(guild.id)},
                                "member": {**self.member(user),
                                           "permissions": self.permissions.get(user["id"], ALL_PERMISSIONS)}})
            interaction["data"]["guild_id"] = str(guild.id)
        else:
            interaction.update({"user": user, "context": 1, "authorizing_integration_owners": {"1": user["id"]},
                                "channel": {"id": str(channel_id), "type": 1, "recipients": [user],
                                            "last_message_id": None}})
        if dispatch:
            await self.dispatch("INTERACTION_CREATE", interaction)
        return interaction

    async def context_menu(self, guild: FakeGuild, user: JSON, name: str, target: JSON) -> JSON:
        """A person picks a message context-menu command (Apps > `name`) on the message `target`."""
        interaction = await self.interact(guild, int(target["channel_id"]), user, name, dispatch=False)
        interaction["data"].update(type=3, target_id=target["id"], options=[],
                                   resolved={"messages": {target["id"]: target}})
        await self.dispatch("INTERACTION_CREATE", interaction)
        return interaction

    async def click(self, guild: FakeGuild, channel_id: int, user: JSON, message: JSON, custom_id: str) -> JSON:
        """A person clicks the button `custom_id` on a message the bot sent (e.g. an ephemeral follow-up)."""
        interaction = await self.interact(guild, channel_id, user, "", dispatch=False)
        interaction.update(type=3, message={k: v for k, v in message.items() if k != "allowed_mentions"},
                           data={"custom_id": custom_id, "component_type": 2})
        await self.dispatch("INTERACTION_CREATE", interaction)
        return interaction

    async def submit_modal(self, guild: FakeGuild, channel_id: int, user: JSON, modal: JSON,
                           values: dict[str, str]) -> JSON:
        """A person submits a modal the bot opened (`modal`: the callback's data); `values` by input custom_id."""
        interaction = await self.interact(guild, channel_id, user, "", dispatch=False)
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": c["custom_id"], "value": values[c["custom_id"]]}
                                           for c in row["components"]]} for row in modal["components"]]
        interaction.update(type=5, data={"custom_id": modal["custom_id"], "components": rows})
        await self.dispatch("INTERACTION_CREATE", interaction)
        return interaction

    def fail_next_sends(self, *kinds: str) -> None:
        """"rate_limited": answer 429 without posting; "lost": post, then answer 502 as if the response was lost."""
        self._faults.extend(kinds)

    async def reconnect(self) -> None:
        """Ask the bot to reconnect (gateway op 7); it resumes its session on resume_gateway_url."""
        assert self._ws is not None
        await self._send({"op": 7, "d": None})

    # what tests read -------------------------------------------------------------------------------------
    def bot_texts(self, channel_id: int) -> list[str]:
        return [m["content"] for m in self.messages.get(channel_id, []) if int(m["author"]["id"]) == self.app_id]

    def texts(self) -> dict[int, list[str]]:
        """Every channel's bot messages (for failure messages)."""
        return {c: self.bot_texts(c) for c in self.messages if self.bot_texts(c)}

    def thread_for(self, message: JSON) -> int | None:
        """The thread the bot opened on `message`, if any."""
        found = [t for t in self.threads_created if t["id"] == message["id"]]
        return int(found[0]["id"]) if found else None

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 120.0) -> Any:
        """Wait until `predicate()` is truthy (checked after every request and gateway event); return it."""
        async def until() -> Any:
            async with self._changed:
                await self._changed.wait_for(predicate)
            return predicate()
        try:
            return await asyncio.wait_for(until(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out; bot messages so far: {self.texts()}; unknown: {self.unknown}") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # gateway ---------------------------------------------------------------------------------------------
    async def dispatch(self, event: str, data: JSON) -> None:
        await self._send({"op": 0, "t": event, "s": next(self._seq), "d": data})

    async def _send(self, payload: JSON) -> None:
        if self._ws is None or self._ws.closed:
            raise RuntimeError("the bot is not connected to the fake gateway")
        async with self._send_lock:
            await self._ws.send_str(json.dumps(payload))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await self._send({"op": 10, "d": {"heartbeat_interval": 41250}})
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            op = payload.get("op")
            if op == 1:
                await self._send({"op": 11})
            elif op == 2:
                await self._identify(ws, payload["d"])
            elif op == 6:
                self.resumes += 1
                await self.dispatch("RESUMED", {})
            await self._notify()
        if self._ws is ws:
            self._ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: JSON) -> None:
        self.identifies += 1
        if data.get("intents", 0) & MESSAGE_CONTENT_INTENT and not self.allow_message_content:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        gateway = f"ws://127.0.0.1:{self.port}/gateway"
        await self.dispatch("READY", {
            "v": 10, "user": {**self.bot_user, "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds], "session_id": "fake-session",
            "resume_gateway_url": gateway, "application": {"id": str(self.app_id), "flags": 0},
            "private_channels": [], "relationships": [], "presences": [], "shard": [0, 1]})
        for guild in self.guilds.values():
            await self.dispatch("GUILD_CREATE", self.guild_json(guild))

    # REST ------------------------------------------------------------------------------------------------
    def _routes(self) -> list[tuple[str, str, Callable[[web.Request], Any]]]:
        return [
            ("GET", "/users/@me", self._me),
            ("GET", "/oauth2/applications/@me", self._app_info),
            ("GET", "/gateway", self._gateway_url),
            ("GET", "/channels/{cid}", self._get_channel),
            ("POST", "/channels/{cid}/messages", self._create_message),
            ("PATCH", "/channels/{cid}/messages/{mid}", self._edit_message),
            ("POST", "/channels/{cid}/typing", self._typing),
            ("POST", "/channels/{cid}/messages/{mid}/threads", self._start_thread),
            ("POST", "/interactions/{iid}/{token}/callback", self._callback),
            ("POST", "/webhooks/{app}/{token}", self._followup),
            ("DELETE", "/webhooks/{app}/{token}/messages/@original", self._delete_original),
            ("PUT", "/applications/{app}/commands", self._sync),
            ("PUT", "/applications/{app}/guilds/{gid}/commands", self._sync),
        ]

    @web.middleware
    async def _record(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        body = await self._body(request)
        if request.path.startswith(API):
            self.calls.append(Call(request.method, request.path[len(API):], dict(request.query), body))
            needs_token = not request.path.startswith((API + "/interactions/", API + "/webhooks/"))
            if needs_token and request.headers.get("Authorization") != f"Bot {self.token}":
                return error(401, "401: Unauthorized")
        try:
            response: web.StreamResponse = await handler(request)
        finally:
            await self._notify()
        return response

    @staticmethod
    async def _body(request: web.Request) -> Any:
        """The JSON body, or None (aiohttp keeps the bytes, so handlers read it again after the middleware)."""
        if request.body_exists and request.content_type == "application/json":
            return await request.json()
        return None

    async def _me(self, request: web.Request) -> web.Response:
        return json_response(self.bot_user)

    async def _gateway_url(self, request: web.Request) -> web.Response:
        return json_response({"url": f"ws://127.0.0.1:{self.port}/gateway"})

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown.append(f"{request.method} {request.path}")
        return error(404, "404: Not Found")

    async def _app_info(self, request: web.Request) -> web.Response:
        return json_response({"id": str(self.app_id), "name": "membot", "description": "", "icon": None,
                              "bot_public": True, "bot_require_code_grant": False, "owner": self.bot_user,
                              "verify_key": "0" * 64, "flags": 0, "team": None, "summary": "",
                              "interactions_endpoint_url": None})

    def _guild_of(self, channel_id: int) -> int | None:
        for guild in self.guilds.values():
            if any(int(c["id"]) == channel_id for c in guild.channels + guild.threads):
                return guild.id
        return None

    async def _get_channel(self, request: web.Request) -> web.Response:
        cid = int(request.match_info["cid"])
        for guild in self.guilds.values():
            for channel in guild.channels + guild.threads:
                if int(channel["id"]) == cid:
                    return json_response(channel)
        return error(404, "Unknown Channel", 10003)

    async def _create_message(self, request: web.Request) -> web.Response:
        cid = int(request.match_info["cid"])
        body = await self._body(request) or {}
        fault = self._faults.popleft() if self._faults else ""
        if fault == "rate_limited":
            return json_response({"message": "You are being rate limited.", "retry_after": 0.05, "global": False},
                                 429, {"Via": "1.1 google", "Retry-After": "1"})
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce") and (cid, nonce) in self._nonces:
            return json_response(self._nonces[(cid, nonce)])
        if len(body.get("content") or "") > 2000:
            return error(400, "Invalid Form Body: content: Must be 2000 or fewer in length.", 50035)
        message = self.message_json(cid, self.bot_user, body.get("content") or "", self._guild_of(cid), nonce=nonce)
        message["allowed_mentions"] = body.get("allowed_mentions")  # kept for assertions (not in Discord's echo)
        reference = body.get("message_reference")
        if reference:  # a reply: Discord echoes it as type 19 with the reference (and the message it answers)
            replied = next((m for m in self.messages.get(cid, []) if m["id"] == str(reference.get("message_id"))),
                           None)
            if replied is None and reference.get("fail_if_not_exists", True):
                return error(400, "Invalid Form Body: message_reference: Unknown message", 50035)
            message.update(type=19, message_reference={"type": 0, "channel_id": str(cid), **reference,
                                                        "message_id": str(reference.get("message_id"))},
                           referenced_message=replied)
        self.messages[cid].append(message)
        if nonce is not None:
            self._nonces[(cid, nonce)] = message
        await self.dispatch("MESSAGE_CREATE", {k: v for k, v in message.items() if k != "allowed_mentions"})
        if fault == "lost":
            return error(502, "Bad Gateway")
        return json_response(message)

    async def _edit_message(self, request: web.Request) -> web.Response:
        cid, mid = int(request.match_info["cid"]), request.match_info["mid"]
        for message in self.messages.get(cid, []):
            if message["id"] == mid:
                content = (await self._body(request) or {}).get("content")
                if content is not None:
                    message.setdefault("versions", [message["content"]]).append(content)
                    message["content"] = content
                return json_response(message)
        return error(404, "Unknown Message", 10008)

    async def _typing(self, request: web.Request) -> web.Response:
        self.typing.append(int(request.match_info["cid"]))
        return web.Response(status=204)

    async def _start_thread(self, request: web.Request) -> web.Response:
        cid, mid = int(request.match_info["cid"]), int(request.match_info["mid"])
        gid = self._guild_of(cid)
        if gid is None:
            return error(400, "Cannot execute action on a DM channel", 50003)
        thread = self.thread_json(gid, cid, self.app_id, (await self._body(request) or {}).get("name", "thread"))
        thread["id"] = str(mid)  # a thread started from a message has the message's id
        self.guilds[gid].threads.append(thread)
        self.threads_created.append(thread)
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return json_response(thread, 201)

    async def _callback(self, request: web.Request) -> web.Response:
        iid = int(request.match_info["iid"])
        body = await self._body(request) or {}
        self.callbacks[iid].append(body)
        data = body.get("data") or {}
        result: JSON = {"interaction": {"id": str(iid), "type": 2, "response_message_loading": body.get("type") == 5,
                                        "response_message_ephemeral": bool((data.get("flags") or 0) & EPHEMERAL)},
                        "resource": {"type": body.get("type")}}
        return json_response(result)

    async def _followup(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        body = await self._body(request) or {}
        message = self.message_json(0, self.bot_user, body.get("content") or "")
        message.update({"webhook_id": str(self.app_id), "flags": body.get("flags") or 0,
                        "allowed_mentions": body.get("allowed_mentions"), "embeds": body.get("embeds") or [],
                        "components": body.get("components") or [], "interaction_token": token})
        self.followups[token].append(message)
        return json_response(message)

    async def _delete_original(self, request: web.Request) -> web.Response:
        self.deleted_originals.append(request.match_info["token"])
        return web.Response(status=204)

    async def _sync(self, request: web.Request) -> web.Response:
        where = request.match_info.get("gid", "global")
        if where != "global" and int(where) not in self.guilds:  # Discord: the bot is not in that server
            return error(403, "Missing Access", 50001)
        commands = [{**c, "id": str(self.snowflake()), "application_id": str(self.app_id), "version": "1",
                     "default_member_permissions": None, "type": c.get("type", 1),
                     "description": c.get("description", "")}
                    for c in (await self._body(request) or [])]
        self.commands[where] = commands
        return json_response(commands)

    async def _cdn(self, request: web.Request) -> web.Response:
        self.downloads.append(request.match_info["path"])
        data = self.files.get(request.match_info["path"])
        if data is None:
            return web.Response(status=404, text="Not found")
        return web.Response(body=data, headers={"Content-Type": "application/octet-stream"})
