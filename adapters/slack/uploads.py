"""Files shared in a channel: each becomes a source of the workspace attached to the channel's agent, and the
bot answers in the file's thread with what was loaded or why not."""

from __future__ import annotations

import dataclasses
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from adapters.listing import load_report_markdown
from adapters.slack.files import slack_input
from adapters.slack.replies import apology, post, working
from adapters.slack.state import SlackState
from agent import Channel, InputFile, UserError


def load_uploads(bot: SlackState, client: WebClient, place: Channel, channel: str, ts: str, thread: str,
                 files: list[dict[str, Any]], user: str = "", channel_type: str = "") -> None:
    """Load the files not seen before (a file arrives as a message and as file_shared: it is loaded once). In a
    private conversation they stay visible there only."""
    team = place.scope.partition(":")[2]
    new = [f for f in files if bot.seen.first("file", team, channel, str(f.get("id")))]
    if not new:
        return
    place = dataclasses.replace(place, private=bot.privacy.is_private(client, channel, channel_type))
    with working(client, channel, ts):
        inputs: list[InputFile] = []
        lines: list[str] = []
        for file in new:
            try:
                inputs.append(slack_input(complete(client, file), str(client.token), bot.max_file_bytes,
                                          origins=bot.file_origins))
            except SlackApiError as exc:
                lines.append(f"Could not load `{file.get('name') or file.get('id')}`: Slack refused files.info "
                             f"({exc.response.get('error')}); the app needs the files:read scope.")
        try:
            lines += [load_report_markdown(name, report) for name, report in bot.core.load(place, inputs, user)]
        except UserError as exc:
            lines.append(str(exc))
        except Exception:
            lines.append(apology(f"loading uploads in {channel} failed"))
        post(client, channel, thread, ["\n".join(lines)])


def complete(client: WebClient, file: dict[str, Any]) -> dict[str, Any]:
    """The full file object: events sometimes carry only the id (file_access: check_file_info)."""
    if file.get("url_private_download") or file.get("url_private") or file.get("is_external"):
        return file
    info: dict[str, Any] = client.files_info(file=str(file["id"]))["file"]
    return info


def shared_at(file: dict[str, Any], channel: str) -> tuple[str, str]:
    """(ts, thread_ts) of the message that shared `file` in `channel`, from files.info's `shares`."""
    for kind in ("public", "private"):
        for share in ((file.get("shares") or {}).get(kind) or {}).get(channel) or []:
            return str(share.get("ts") or ""), str(share.get("thread_ts") or "")
    return "", ""
