"""A fake Slack workspace on 127.0.0.1 that the real slack_sdk / Bolt talk to over the real wire protocols.

    with FakeSlack(team_id="T1") as slack:
        # point membot at it: SLACK_BOT_TOKEN=slack.bot_token, MEMBOT_SLACK_API_URL=slack.api_url, ...
        slack.use_socket_mode()            # or slack.use_http(events_url) for the Events API
        ts = slack.say("U1", "C1", "<@UBOT> hello")
        [reply] = slack.wait_posts(1)

It serves
- the Web API methods membot calls (auth.test, chat.postMessage, reactions.add/remove, users.info, files.info,
  conversations.info, conversations.replies, apps.connections.open), checking the bearer token; `fail()`
  scripts errors (429 with Retry-After, or `{"ok": false, "error": ...}`);
- file downloads at `url_private_download`: the bytes with the bot token, an HTML sign-in page (HTTP 200)
  without it;
- `response_url`s for slash commands and actions;
- the Socket Mode websocket: `hello`, then envelopes (`events_api`, `slash_commands`, `interactive`), recording
  the app's acks. Like Slack it holds several connections at once (one per `apps.connections.open` URL, for
  instance one per process) and gives each envelope to one of them: round-robin, or as `route` decides, or to the
  connection `to=` names. With `socket_retries(timeout)` an events_api envelope not acked in time is delivered
  again, as a new envelope with `retry_attempt` / `retry_reason` set, to the next connection (another process);
and delivers events, commands and actions either over that websocket or as signed HTTP requests to the app.
Everything is recorded; `wait_for` and friends block (with a time-out) until something has happened.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web
from slack_sdk.signature import SignatureVerifier

JSON = dict[str, Any]
SIGN_IN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>"
DEFAULT_USERS = {"U1": "Alice", "U2": "Bob", "U3": "Carol"}


@dataclass(frozen=True)
class Call:
    """One Web API call: method name, its arguments (query, form or JSON merged), the token, and when."""

    method: str
    args: JSON
    token: str
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Failure:
    error: str
    status: int = 200
    retry_after: int | None = None


@dataclass
class StoredFile:
    meta: JSON
    data: bytes
    content_type: str
    sign_in_page: bool = False  # serve the HTML sign-in page even with the token (a missing files:read scope)


class FakeSlack:
    def __init__(self, team_id: str = "T1", bot_user_id: str = "UBOT", users: dict[str, str] | None = None,
                 signing_secret: str = "fake-signing-secret") -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = "B" + bot_user_id
        self.bot_token = f"xoxb-{team_id}-fake"
        self.app_token = f"xapp-1-{team_id}-fake"
        self.signing_secret = signing_secret
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.calls: list[Call] = []
        self.responses: list[JSON] = []  # bodies POSTed to response_urls, each with "response_url_id"
        self.acks: dict[str, JSON] = {}  # envelope_id -> the app's ack
        self.downloads: list[tuple[str, bool]] = []  # (file id, whether the token was right)
        self.history: dict[str, list[JSON]] = {}  # channel -> messages, people's and the bot's
        self.files: dict[str, StoredFile] = {}
        self.mpims: set[str] = set()  # group DMs: their events say channel_type "mpim"
        self.private: set[str] = set()  # private channels besides those whose id starts with G
        self.admins: set[str] = set()  # users.info says is_admin for them
        self.members: dict[str, set[str]] = {}  # channel -> its members (the bot too, once it is in)
        self.views: dict[str, JSON] = {}  # view id -> the view as last published, opened or updated
        self.homes: dict[str, str] = {}  # user -> the view id of their App Home
        self._failures: dict[str, deque[Failure]] = {}
        self._cond = threading.Condition()
        self._clock = itertools.count(1)
        self._sockets: dict[int, web.WebSocketResponse] = {}  # open Socket Mode connections by serial number
        self._connections = 0  # connections ever opened; the newest has this serial number
        self._turn = itertools.count()
        # (envelope, open connection serials in order) -> the serial to deliver to; None: round-robin
        self.route: Callable[[JSON, list[int]], int] | None = None
        self.envelopes: list[tuple[int, JSON]] = []  # every Socket Mode envelope sent: (connection serial, envelope)
        self._retry_timeout: float | None = None
        self._max_retries = 3
        self._first_of: dict[str, str] = {}  # envelope id -> the envelope id of the first delivery of its payload
        self._events_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"FakeSlack:{team_id}", daemon=True)
        self._thread.start()
        self.port: int = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.root = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.root}/api/"

    # ----------------------------------------------------------------------------------------- lifecycle

    async def _start(self) -> int:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files/{file_id}/{name}", self._download)
        app.router.add_post("/respond/{rid}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def _stop(self) -> None:
        for ws in list(self._sockets.values()):
            await ws.close()
        await self._runner.cleanup()

    def close(self) -> None:
        if not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FakeSlack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- scripting

    def fail(self, method: str, error: str = "ratelimited", status: int = 200, retry_after: int | None = None,
             times: int = 1) -> None:
        """The next `times` calls of `method` fail: HTTP `status` (429 adds Retry-After) with ok=false."""
        with self._cond:
            self._failures.setdefault(method, deque()).extend([Failure(error, status, retry_after)] * times)

    def use_socket_mode(self, timeout: float = 10, connections: int = 1) -> None:
        """Deliver over the websocket(s); waits until the app has `connections` of them open."""
        self._events_url = ""
        self.wait_for(lambda: len(self._sockets) >= connections, timeout,
                      f"{connections} open Socket Mode websocket(s)")

    def connections(self) -> list[int]:
        """Serial numbers of the open Socket Mode connections, oldest first."""
        with self._cond:
            return sorted(self._sockets)

    def socket_retries(self, timeout: float | None = 3.0, max_retries: int = 3) -> None:
        """Redeliver an events_api envelope not acked within `timeout` seconds (None: never), up to `max_retries`
        times, each to the next open connection after the one that kept it waiting."""
        self._retry_timeout, self._max_retries = timeout, max_retries

    def refresh_connection(self, timeout: float = 30, serial: int | None = None) -> None:
        """Ask the app to reconnect, as Slack does every few hours ("disconnect", refresh_requested), on the
        connection `serial` (default: the oldest); waits until it has opened a new websocket."""
        with self._cond:
            serial = serial if serial is not None else min(self._sockets)
            ws, before = self._sockets[serial], self._connections
        message = json.dumps({"type": "disconnect", "reason": "refresh_requested"})
        asyncio.run_coroutine_threadsafe(ws.send_str(message), self._loop).result(10)
        self.wait_for(lambda: self._connections > before and serial not in self._sockets, timeout,
                      "a new Socket Mode connection")

    def use_http(self, events_url: str) -> None:
        """Deliver as signed HTTP requests to the app's Request URL."""
        self._events_url = events_url

    def next_ts(self) -> str:
        return f"1700000000.{next(self._clock):06d}"

    # ----------------------------------------------------------------------------------------- people's actions

    def say(self, user: str, channel: str, text: str, thread_ts: str = "", wait: bool = True) -> str:
        """A person posts a message: a `message` event, and an `app_mention` too when it mentions the bot."""
        ts = self.next_ts()
        message = self._record_message(channel, {"type": "message", "user": user, "text": text, "ts": ts,
                                                 "thread_ts": thread_ts})
        for event in self.events_for(message, channel):
            self.deliver_event(event, wait=wait)
        return ts

    def events_for(self, message: JSON, channel: str) -> list[JSON]:
        """The events Slack sends for a new message: app_mention (if the bot is mentioned), then message."""
        base = {k: v for k, v in message.items() if v not in ("", None)}
        base.update(channel=channel, event_ts=message["ts"], team=self.team_id)
        events = []
        if f"<@{self.bot_user_id}>" in message.get("text", ""):
            events.append({**base, "type": "app_mention"})
        kind = ("mpim" if channel in self.mpims else "im" if channel.startswith("D")
                else "group" if channel.startswith("G") or channel in self.private else "channel")
        events.append({**base, "type": "message", "channel_type": kind})
        return events

    def upload(self, user: str, channel: str, name: str, data: bytes, content_type: str = "application/pdf",
               text: str = "", size: int | None = None, sign_in_page: bool = False, id_only: bool = False) -> str:
        """A person uploads a file: a `message` (subtype file_share) and a `file_shared` event. Returns its ts."""
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        ts = self.next_ts()
        meta = {"id": file_id, "name": name, "title": name, "mimetype": content_type,
                "filetype": name.rsplit(".", 1)[-1], "size": len(data) if size is None else size,
                "user": user, "url_private": f"{self.root}/files/{file_id}/{name}",
                "url_private_download": f"{self.root}/files/{file_id}/{name}?download=1",
                "shares": {"private" if channel[0] in "DG" else "public": {channel: [{"ts": ts}]}}}
        with self._cond:
            self.files[file_id] = StoredFile(meta, data, content_type, sign_in_page)
        shown = {"id": file_id, "mode": "hosted", "file_access": "check_file_info"} if id_only else meta
        message = self._record_message(channel, {"type": "message", "subtype": "file_share", "user": user,
                                                 "text": text, "ts": ts, "files": [shown], "upload": True})
        self.deliver_event({**self.events_for(message, channel)[-1]})
        self.deliver_event({"type": "file_shared", "file_id": file_id, "user_id": user, "file": {"id": file_id},
                            "channel_id": channel, "event_ts": ts})
        return ts

    def delete_file(self, file_id: str) -> None:
        """A person deletes an uploaded file: a `file_deleted` event."""
        with self._cond:
            self.files.pop(file_id, None)
        self.deliver_event({"type": "file_deleted", "file_id": file_id, "event_ts": self.next_ts()})

    def command(self, name: str, text: str = "", user: str = "U1", channel: str = "C1") -> tuple[int, str]:
        """A person runs a slash command; returns the app's ack (status, body)."""
        payload = {"token": "verification", "team_id": self.team_id, "team_domain": "fake",
                   "channel_id": channel, "channel_name": "directmessage" if channel[0] == "D" else "general",
                   "user_id": user, "user_name": self.users.get(user, user), "command": name, "text": text,
                   "api_app_id": "A1", "response_url": self._response_url(), "trigger_id": uuid.uuid4().hex}
        return self.deliver("slash_commands", payload)

    def pick(self, block: JSON, value: str, user: str = "U1", channel: str = "C1") -> tuple[int, str]:
        """A person picks `value` in the select of a section block the app sent (static: one of its options;
        external: one the app suggested)."""
        accessory = block["accessory"]
        options = accessory.get("options") or self.suggest(block, value, user, channel)
        option = next(o for o in options if o["value"] == value)
        payload = {"type": "block_actions", "team": {"id": self.team_id, "domain": "fake"},
                   "user": {"id": user, "name": self.users.get(user, user), "team_id": self.team_id},
                   "api_app_id": "A1", "token": "verification", "trigger_id": uuid.uuid4().hex,
                   "container": {"type": "message", "channel_id": channel, "is_ephemeral": True},
                   "channel": {"id": channel, "name": "general"}, "response_url": self._response_url(),
                   "actions": [{"type": accessory["type"], "action_id": accessory["action_id"],
                                "block_id": block.get("block_id", "b1"), "selected_option": option,
                                "action_ts": str(time.time())}]}
        return self.deliver("interactive", payload)

    def join(self, channel: str, *users: str) -> None:
        """`users` (the bot's id among them, to add the bot) become members of `channel`."""
        with self._cond:
            self.members.setdefault(channel, set()).update(users)

    def open_home(self, user: str = "U1") -> JSON:
        """A person opens the app's Home tab: an `app_home_opened` event; returns its body."""
        event = {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home",
                 "event_ts": self.next_ts()}
        if user in self.homes:
            event["view"] = self.views[self.homes[user]]
        return self.deliver_event(event)

    def wait_home(self, user: str = "U1", after: int = 0, timeout: float = 60) -> JSON:
        """The user's App Home once views.publish was called for them more than `after` times."""
        self.wait_for(lambda: len([c for c in self.calls_of("views.publish") if c.args.get("user_id") == user])
                      > after, timeout, f"views.publish for {user}")
        return self.views[self.homes[user]]

    def click(self, view: JSON, action_id: str, value: str = "", user: str = "U1") -> tuple[int, str]:
        """A person clicks a button (found by action_id and, if given, value) in a view; returns the ack."""
        button, block = next((e, b) for b in view["blocks"] for e in _elements(b)
                             if e.get("action_id") == action_id and (not value or e.get("value") == value))
        payload = {"type": "block_actions", "team": {"id": self.team_id, "domain": "fake"},
                   "user": {"id": user, "name": self.users.get(user, user), "team_id": self.team_id},
                   "api_app_id": "A1", "token": "verification", "trigger_id": uuid.uuid4().hex,
                   "container": {"type": "view", "view_id": view["id"]}, "view": view,
                   "actions": [{"type": "button", "action_id": action_id, "block_id": block.get("block_id", ""),
                                "value": button.get("value", ""), "action_ts": str(time.time())}]}
        return self.deliver("interactive", payload)

    def submit(self, view: JSON, values: dict[str, str], user: str = "U1") -> JSON:
        """A person submits a modal; `values` maps each input block's block_id to the text typed. Returns the
        app's ack payload ({} for a plain ack; response_action "errors" with the errors shown in the modal)."""
        state: JSON = {}
        for block in view["blocks"]:
            if block.get("type") == "input":
                element = block["element"]
                state[block["block_id"]] = {element["action_id"]: {"type": element["type"],
                                                                   "value": values[block["block_id"]]}}
        payload = {"type": "view_submission", "team": {"id": self.team_id, "domain": "fake"},
                   "user": {"id": user, "name": self.users.get(user, user), "team_id": self.team_id},
                   "api_app_id": "A1", "token": "verification", "trigger_id": uuid.uuid4().hex,
                   "view": {**view, "state": {"values": state}}, "response_urls": []}
        _, body = self.deliver("interactive", payload)
        answer = json.loads(body) if body else {}
        return answer if isinstance(answer, dict) else {}

    def suggest(self, block: JSON, typed: str, user: str = "U1", channel: str = "C1") -> list[JSON]:
        """A person types into an external_select: a block_suggestion; returns the options the app answered."""
        accessory = block["accessory"]
        payload = {"type": "block_suggestion", "team": {"id": self.team_id, "domain": "fake"},
                   "user": {"id": user, "name": self.users.get(user, user), "team_id": self.team_id},
                   "api_app_id": "A1", "token": "verification", "action_id": accessory["action_id"],
                   "block_id": block.get("block_id", "b1"), "value": typed,
                   "container": {"type": "message", "channel_id": channel, "is_ephemeral": True},
                   "channel": {"id": channel, "name": "general"}}
        status, body = self.deliver("interactive", payload)
        assert status == 200, body
        answer = json.loads(body)
        return list(answer["options"] if isinstance(answer, dict) else [])

    # ----------------------------------------------------------------------------------------- delivery

    def event_body(self, event: JSON, event_id: str | None = None) -> JSON:
        return {"token": "verification", "team_id": self.team_id, "api_app_id": "A1", "event": event,
                "type": "event_callback", "event_id": event_id or f"Ev{uuid.uuid4().hex[:12].upper()}",
                "event_time": int(time.time()), "event_context": uuid.uuid4().hex,
                "authorizations": [{"team_id": self.team_id, "user_id": self.bot_user_id, "is_bot": True}]}

    def deliver_event(self, event: JSON, event_id: str | None = None, retry: int = 0,
                      wait: bool = True, to: int | None = None) -> JSON:
        """Send an event to the app (as Slack does: once, or as retry number `retry`); returns its body. In Socket
        Mode `to` names the connection (a serial number) it goes to."""
        body = self.event_body(event, event_id)
        self.deliver("events_api", body, retry, wait, to)
        return body

    def deliver(self, kind: str, payload: JSON, retry: int = 0, wait: bool = True,
                to: int | None = None) -> tuple[int, str]:
        """Deliver one envelope; returns the app's answer (status, body), or (0, envelope_id) with wait=False.
        In Socket Mode the answer is the ack of this envelope or of one of its redeliveries."""
        if self._events_url:
            return self._post_signed(kind, payload, retry)
        envelope = self._envelope(kind, payload, retry)
        envelope_id = envelope["envelope_id"]
        with self._cond:
            self._first_of[envelope_id] = envelope_id
        self._send(envelope, self._pick(envelope, to))
        if not wait:
            return 0, envelope_id
        ack = self.wait_for(lambda: self._ack_of(envelope_id), 10 + 4 * (self._retry_timeout or 0),
                            f"the ack of envelope {envelope_id}")
        return 200, json.dumps(ack.get("payload") or "")

    def deliveries(self, event_id: str) -> list[tuple[int, JSON]]:
        """The Socket Mode envelopes that carried the event `event_id`: (connection serial, envelope), in order."""
        with self._cond:
            return [(serial, e) for serial, e in self.envelopes if e["payload"].get("event_id") == event_id]

    def _envelope(self, kind: str, payload: JSON, retry: int, reason: str = "timeout") -> JSON:
        envelope: JSON = {"envelope_id": uuid.uuid4().hex, "type": kind, "payload": payload,
                          "accepts_response_payload": kind != "events_api"}
        if kind == "events_api":
            envelope.update(retry_attempt=retry, retry_reason=reason if retry else "")
        return envelope

    def _ack_of(self, first: str) -> JSON | None:
        """The app's ack of the envelope `first` or of any redelivery of it (caller holds the lock)."""
        return next((self.acks[e] for e, f in self._first_of.items() if f == first and e in self.acks), None)

    def _pick(self, envelope: JSON, to: int | None) -> int:
        with self._cond:
            open_ = sorted(self._sockets)
            if not open_:
                raise RuntimeError("the app is not connected over Socket Mode")
            if to is None:
                to = self.route(envelope, open_) if self.route is not None else open_[next(self._turn) % len(open_)]
            if to not in self._sockets:
                raise RuntimeError(f"no open Socket Mode connection {to} (open: {open_})")
            return to

    def _send(self, envelope: JSON, serial: int) -> None:
        with self._cond:
            ws = self._sockets[serial]
            self.envelopes.append((serial, envelope))
            self._cond.notify_all()
        asyncio.run_coroutine_threadsafe(ws.send_str(json.dumps(envelope)), self._loop).result(10)
        if envelope["type"] == "events_api" and self._retry_timeout is not None:
            self._loop.call_soon_threadsafe(self._loop.call_later, self._retry_timeout, self._retry, envelope, serial)

    def _retry(self, envelope: JSON, serial: int) -> None:
        """On the fake's loop: `envelope` was not acked in time; send its payload again to the next connection."""
        with self._cond:
            acked = self._ack_of(self._first_of[envelope["envelope_id"]]) is not None
            open_ = sorted(self._sockets)
        attempt = int(envelope.get("retry_attempt") or 0) + 1
        if acked or not open_ or attempt > self._max_retries:
            return
        target = next((s for s in open_ if s > serial), open_[0])
        again = self._envelope("events_api", envelope["payload"], attempt)
        with self._cond:
            self._first_of[again["envelope_id"]] = self._first_of[envelope["envelope_id"]]
        threading.Thread(target=self._send, args=(again, target), daemon=True).start()  # _send waits on this loop

    def signed_headers(self, body: bytes, secret: str | None = None, content_type: str = "application/json"
                       ) -> dict[str, str]:
        stamp = str(int(time.time()))
        signature = SignatureVerifier(secret or self.signing_secret).generate_signature(timestamp=stamp, body=body)
        assert signature is not None
        return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}

    def _post_signed(self, kind: str, payload: JSON, retry: int) -> tuple[int, str]:
        if kind == "events_api":
            body, ctype = json.dumps(payload).encode(), "application/json"
        elif kind == "slash_commands":
            body, ctype = urllib.parse.urlencode(payload).encode(), "application/x-www-form-urlencoded"
        else:
            body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
            ctype = "application/x-www-form-urlencoded"
        headers = self.signed_headers(body, content_type=ctype)
        if retry:
            headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
        return post(self._events_url, body, headers)

    # ----------------------------------------------------------------------------------------- observing

    def wait_for(self, check: Callable[[], Any], timeout: float = 30, what: str = "a condition") -> Any:
        """Block until `check()` is truthy (re-checked on every recorded request); returns its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = check()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"FakeSlack: no {what} within {timeout} s")
                self._cond.wait(min(left, 0.5))

    def calls_of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def posts(self, channel: str | None = None) -> list[JSON]:
        """Arguments of the chat.postMessage calls that succeeded (in order)."""
        with self._cond:
            return [m for ch, msgs in self.history.items() for m in msgs
                    if m.get("bot_id") and (channel is None or ch == channel)]

    def wait_posts(self, n: int, channel: str | None = None, timeout: float = 60) -> list[JSON]:
        return list(self.wait_for(lambda: len(self.posts(channel)) >= n and self.posts(channel), timeout,
                                  f"{n} posted message(s)"))

    def wait_responses(self, n: int, timeout: float = 30) -> list[JSON]:
        return list(self.wait_for(lambda: len(self.responses) >= n and list(self.responses), timeout,
                                  f"{n} response_url message(s)"))

    # ----------------------------------------------------------------------------------------- internals

    def _record_message(self, channel: str, message: JSON) -> JSON:
        with self._cond:
            self.history.setdefault(channel, []).append(message)
            self._cond.notify_all()
        return message

    def _response_url(self) -> str:
        return f"{self.root}/respond/{uuid.uuid4().hex[:10]}"

    def _failure(self, method: str) -> Failure | None:
        with self._cond:
            queue = self._failures.get(method)
            return queue.popleft() if queue else None

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: JSON = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else str(args.pop("token", ""))
        call = Call(method, args, token)
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth" if token else "not_authed"})
        failure = self._failure(method)
        if failure is not None:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return web.json_response({"ok": False, "error": failure.error}, status=failure.status, headers=headers)
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: JSON = handler(args)
        return web.json_response({"ok": True, **result})

    def _api_auth_test(self, args: JSON) -> JSON:
        return {"url": "https://fake.slack.com/", "team": f"Fake {self.team_id}", "user": "membot",
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def _api_apps_connections_open(self, args: JSON) -> JSON:
        return {"url": f"ws://127.0.0.1:{self.port}/socket?ticket={uuid.uuid4().hex}"}

    def _api_chat_postMessage(self, args: JSON) -> JSON:
        channel = str(args.get("channel"))
        message = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id, "text": args.get("text", ""),
                   "ts": self.next_ts(), "thread_ts": args.get("thread_ts") or "", "channel": channel,
                   "args": args, "at": time.monotonic()}
        self._record_message(channel, message)
        return {"channel": channel, "ts": message["ts"], "message": {k: message[k] for k in ("type", "user", "text")}}

    def _api_users_conversations(self, args: JSON) -> JSON:
        user = str(args.get("user") or self.bot_user_id)
        with self._cond:
            ids = sorted(c for c, people in self.members.items() if user in people)
        return {"channels": [{"id": c, "name": f"chan-{c.lower()}", "is_mpim": c in self.mpims,
                              "is_private": c[0] == "G"} for c in ids], "response_metadata": {"next_cursor": ""}}

    def _api_conversations_info(self, args: JSON) -> JSON:
        channel = str(args.get("channel"))
        im, mpim = channel.startswith("D"), channel in self.mpims
        private = channel.startswith("G") or channel in self.private or mpim
        return {"channel": {"id": channel, "name": f"chan-{channel.lower()}", "is_im": im, "is_mpim": mpim,
                            "is_private": private, "is_channel": not (im or mpim or private),
                            "is_group": private and not mpim}}

    def _view(self, view: Any, view_id: str = "") -> JSON:
        stored = {**(json.loads(view) if isinstance(view, str) else view), "id": view_id or f"V{next(self._clock)}"}
        with self._cond:
            self.views[stored["id"]] = stored
            self._cond.notify_all()
        return stored

    def _api_views_publish(self, args: JSON) -> JSON:
        user = str(args.get("user_id"))
        stored = self._view(args.get("view"), self.homes.get(user, ""))
        if stored.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        self.homes[user] = stored["id"]
        return {"view": stored}

    def _api_views_open(self, args: JSON) -> JSON:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        return {"view": self._view(args.get("view"))}

    def _api_chat_update(self, args: JSON) -> JSON:
        channel, ts = str(args.get("channel")), str(args.get("ts"))
        with self._cond:
            message = next((m for m in self.history.get(channel, []) if m["ts"] == ts and m.get("bot_id")), None)
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            message.setdefault("versions", [message["text"]]).append(args.get("text", ""))
            message["text"] = args.get("text", "")
            self._cond.notify_all()
        return {"channel": channel, "ts": ts, "text": message["text"]}

    def _api_reactions_add(self, args: JSON) -> JSON:
        return {}

    def _api_reactions_remove(self, args: JSON) -> JSON:
        return {}

    def _api_users_info(self, args: JSON) -> JSON:
        user = str(args.get("user"))
        name = self.users.get(user, user)
        return {"user": {"id": user, "team_id": self.team_id, "name": name.lower(), "real_name": f"{name} Real",
                         "is_admin": user in self.admins, "is_owner": False,
                         "profile": {"display_name": name, "real_name": f"{name} Real"}}}

    def _api_files_info(self, args: JSON) -> JSON:
        stored = self.files.get(str(args.get("file")))
        return {"file": stored.meta} if stored else {"ok": False, "error": "file_not_found"}

    def _api_conversations_replies(self, args: JSON) -> JSON:
        root = str(args.get("ts"))
        with self._cond:
            messages = [m for m in self.history.get(str(args.get("channel")), [])
                        if m["ts"] == root or m.get("thread_ts") == root]
        return {"messages": [{k: v for k, v in m.items() if k not in ("args", "at")} for m in messages],
                "has_more": False}

    async def _download(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["file_id"])
        authorized = request.headers.get("Authorization") == f"Bearer {self.bot_token}"
        with self._cond:
            self.downloads.append((request.match_info["file_id"], authorized))
            self._cond.notify_all()
        if stored is None:
            return web.Response(status=404, text="not found")
        if not authorized or stored.sign_in_page:
            return web.Response(body=SIGN_IN_PAGE, content_type="text/html", charset="utf-8")
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._cond:
            self.responses.append({"response_url_id": request.match_info["rid"], **body})
            self._cond.notify_all()
        return web.json_response({"ok": True})

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._cond:
            self._connections += 1
            serial = self._connections
            self._sockets[serial] = ws
            self._cond.notify_all()
        await ws.send_str(json.dumps({"type": "hello", "num_connections": len(self._sockets),
                                      "connection_info": {"app_id": "A1"},
                                      "debug_info": {"host": "fake", "approximate_connection_time": 3600}}))
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                ack = json.loads(frame.data)
                with self._cond:
                    self.acks[ack.get("envelope_id", "")] = ack
                    self._cond.notify_all()
        with self._cond:
            self._sockets.pop(serial, None)
            self._cond.notify_all()
        return ws


def _elements(block: JSON) -> list[JSON]:
    """A block's interactive elements: a section's accessory, an actions block's elements."""
    return [block["accessory"]] if "accessory" in block else list(block.get("elements") or [])


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST with urllib; returns (status, body text) for error statuses too."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
