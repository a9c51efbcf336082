"""The fake Slack's Socket Mode with several connections, driven by the real slack_sdk SocketModeClient: envelopes
shared round-robin (or as routed), and an envelope not acked in time sent again to another connection with
retry_attempt / retry_reason, as Slack does."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from tests.fakes.slack_server import FakeSlack


class Connection:
    """One real Socket Mode client: records what it receives, acks unless told to keep quiet."""

    def __init__(self, slack: FakeSlack) -> None:
        self.received: list[SocketModeRequest] = []
        self.quiet = False
        self.client = SocketModeClient(app_token=slack.app_token, auto_reconnect_enabled=False,
                                       web_client=WebClient(token=slack.bot_token, base_url=slack.api_url))
        self.client.socket_mode_request_listeners.append(self._on_request)
        self.client.connect()

    def _on_request(self, client: SocketModeClient, request: SocketModeRequest) -> None:
        self.received.append(request)
        if not self.quiet:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    def event_ids(self) -> list[str]:
        return [r.payload["event_id"] for r in self.received]


@pytest.fixture
def two() -> Iterator[tuple[FakeSlack, Connection, Connection]]:
    with FakeSlack() as slack:
        one = Connection(slack)
        slack.use_socket_mode(connections=1)
        other = Connection(slack)
        slack.use_socket_mode(connections=2)
        try:
            yield slack, one, other
        finally:
            one.client.close()
            other.client.close()


def test_envelopes_alternate_between_the_connections(two: tuple[FakeSlack, Connection, Connection]) -> None:
    slack, one, other = two
    ids = [slack.deliver_event({"type": "app_mention", "text": f"n{n}", "channel": "C1"})["event_id"]
           for n in range(4)]
    slack.wait_for(lambda: len(one.received) + len(other.received) == 4, 10, "4 envelopes received")
    assert one.event_ids() == ids[0::2] and other.event_ids() == ids[1::2]
    assert [r.retry_attempt for r in one.received + other.received] == [0, 0, 0, 0]


def test_a_route_or_to_picks_the_connection(two: tuple[FakeSlack, Connection, Connection]) -> None:
    slack, one, other = two
    first, second = slack.connections()
    slack.route = lambda envelope, connections: second
    routed = [slack.deliver_event({"type": "app_mention", "text": f"n{n}"})["event_id"] for n in range(2)]
    sent = slack.deliver_event({"type": "app_mention", "text": "to one"}, to=first)["event_id"]
    slack.wait_for(lambda: len(one.received) + len(other.received) == 3, 10, "3 envelopes received")
    assert other.event_ids() == routed and one.event_ids() == [sent]


def test_an_envelope_not_acked_is_sent_again_to_the_other_connection(
        two: tuple[FakeSlack, Connection, Connection]) -> None:
    slack, one, other = two
    first, second = slack.connections()
    slack.socket_retries(timeout=0.5)
    one.quiet = True
    body = slack.deliver_event({"type": "app_mention", "text": "anyone?"}, to=first)  # returns on the retry's ack
    [kept] = one.received
    [retried] = other.received
    assert kept.payload["event_id"] == retried.payload["event_id"] == body["event_id"]
    assert kept.envelope_id != retried.envelope_id
    assert (kept.retry_attempt, retried.retry_attempt, retried.retry_reason) == (0, 1, "timeout")
    assert [serial for serial, _ in slack.deliveries(body["event_id"])] == [first, second]


def test_retries_stop_after_the_last_attempt(two: tuple[FakeSlack, Connection, Connection]) -> None:
    slack, one, other = two
    slack.socket_retries(timeout=0.3, max_retries=2)
    one.quiet = other.quiet = True
    slack.deliver("events_api", slack.event_body({"type": "app_mention"}), wait=False)
    slack.wait_for(lambda: len(one.received) + len(other.received) == 3, 10, "3 deliveries")
    time.sleep(1.0)  # a fourth delivery would have come by now
    attempts = sorted(r.retry_attempt or 0 for r in one.received + other.received)
    assert attempts == [0, 1, 2]
