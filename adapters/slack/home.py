"""The App Home tab: for each channel both the viewer and the bot are in, its agent's memory blocks (each with an
edit button opening a modal), its sources, schedules and recent activity; and the modal's save."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from adapters.slack.format import escape
from adapters.slack.messages import channel_for
from agent import Channel, ChannelHome, ChatCore, UserError, block_limit, channel_home, check_block_text, edit_block

log = logging.getLogger(__name__)

EDIT_ACTION = "membot_edit_block"
EDIT_VIEW = "membot_edit_block"
EDIT_INPUT = "block_text"
MAX_CHANNELS = 8  # a Home view holds at most 100 blocks
TEXT_LIMIT = 2900  # a section's text: at most 3,000 characters
TYPES = "public_channel,private_channel,mpim"
Blocks = list[dict[str, Any]]


def shared_channels(client: WebClient, user: str) -> list[str]:
    """The channels the bot is in that `user` is in too: nobody sees the agent of a channel they are not in."""
    def ids(**who: str) -> list[str]:
        found: list[str] = []
        cursor = ""
        while True:
            page = client.users_conversations(types=TYPES, exclude_archived=True, limit=200, cursor=cursor or None,
                                              **who)
            found += [c["id"] for c in page.get("channels") or []]
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                return found

    mine = set(ids(user=user))
    return [c for c in ids() if c in mine]


def publish_home(core: ChatCore, client: WebClient, team: str, user: str) -> None:
    channels = shared_channels(client, user)
    homes = [channel_home(core, channel_for(team, c, user)) for c in channels[:MAX_CHANNELS]]
    client.views_publish(user_id=user, view={"type": "home", "blocks": home_blocks(homes, len(channels))})


def home_blocks(homes: list[ChannelHome], total: int) -> Blocks:
    blocks: Blocks = [_header("membot"), _text(
        "Each channel I am in has its own agent. Mention me there to talk to it; `/membot help` lists my commands.")]
    if not homes:
        blocks.append(_text("We share no channel yet: invite me to one (`/invite @membot`) and its agent shows here."))
    for home in homes:
        blocks += channel_blocks(home)
    if total > len(homes):
        blocks.append(_context(f"Showing {len(homes)} of {total} channels."))
    return blocks[:100]


def channel_blocks(home: ChannelHome) -> Blocks:
    channel = home.channel.id
    blocks: Blocks = [{"type": "divider"}, _text(f"*<#{channel}>*: {home.messages} messages")]
    for block in home.blocks:
        shown = escape(block.value)[:TEXT_LIMIT] or "_(empty)_"
        blocks.append({"type": "section", "block_id": f"mem:{channel}:{block.label}"[:255],
                       "text": {"type": "mrkdwn", "text": f"*{escape(block.title)}* ({len(block.value)}/{block.limit})"
                                f"\n{shown}"},
                       "accessory": {"type": "button", "action_id": EDIT_ACTION, "text": _plain("Edit"),
                                     "value": json.dumps({"c": channel, "l": block.label})}})
    attached = ", ".join(f"`{s.name}` ({s.passages} passages, {s.files} files)" for s in home.attached) or "none"
    available = ", ".join(f"`{s.name}` ({s.passages})" for s in home.available) or "none"
    blocks.append(_text(f"*Attached sources*: {escape(attached)}\n*Available to attach*: {escape(available)}"
                        [:TEXT_LIMIT]))
    schedules = "\n".join(f"• {escape(line)}" for line in home.schedules) or "none"
    blocks.append(_text(f"*Schedules*:\n{schedules}"[:TEXT_LIMIT]))
    recent = "\n".join(f"• {a.at:%Y-%m-%d %H:%M} {escape(a.who or 'membot')}: {escape(_one_line(a.text))}"
                       for a in home.recent) or "nothing yet"
    blocks.append(_text(f"*Recent activity*:\n{recent}"[:TEXT_LIMIT]))
    return blocks


def edit_modal(core: ChatCore, team: str, user: str, value: str) -> dict[str, Any]:
    """The modal for one block's text, prefilled; what it edits rides in private_metadata."""
    which = json.loads(value)
    place = channel_for(team, which["c"], user)
    block = next(b for b in channel_home(core, place, recent=0).blocks if b.label == which["l"])
    return {"type": "modal", "callback_id": EDIT_VIEW, "title": _plain("Edit memory"), "submit": _plain("Save"),
            "close": _plain("Cancel"), "private_metadata": value,
            "blocks": [_context(f"The *{escape(block.title)}* block of <#{place.id}>'s agent, at most "
                                f"{block.limit} characters."),
                       {"type": "input", "block_id": EDIT_INPUT, "label": _plain(block.title[:150]),
                        "element": {"type": "plain_text_input", "action_id": EDIT_INPUT, "multiline": True,
                                    "initial_value": block.value, "max_length": min(block.limit, 3000)}}]}


def submitted(view: dict[str, Any]) -> tuple[str, str, str]:
    """(channel, label, text) from a submitted edit modal."""
    which = json.loads(view["private_metadata"])
    text = view["state"]["values"][EDIT_INPUT][EDIT_INPUT].get("value") or ""
    return which["c"], which["l"], text


def check_edit(core: ChatCore, place: Channel, label: str, text: str) -> dict[str, str]:
    """The modal's errors by block id ({} when the text may be saved): answered with the ack, at once."""
    try:
        check_block_text(block_limit(core, place, label), text)
    except UserError as exc:
        return {EDIT_INPUT: str(exc)[:150]}  # Slack shows at most 150 characters
    return {}


def save_edit(core: ChatCore, client: WebClient, place: Channel, user: str, label: str, text: str) -> None:
    """Save after the ack (waiting for a running turn), then show the new Home."""
    try:
        log.info(edit_block(core, place, label, text))
    except UserError as exc:
        log.warning("memory edit by %s in %s refused: %s", user, place.id, exc)
    try:
        publish_home(core, client, place.scope.split(":", 1)[1], user)
    except SlackApiError as exc:
        log.warning("views.publish for %s failed: %s", user, exc.response.get("error"))


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:150] or " "}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": _plain(text)}


def _text(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}


def _context(mrkdwn: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn}]}
