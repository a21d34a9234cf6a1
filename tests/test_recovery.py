"""Recovery decisions (pure): replay only what provably never reached the model."""

from __future__ import annotations

import inspect

import pytest

from llmkit import Provider, exceptions as errors
from llmkit.openai._recovery import Action, Cooldown, Failure, decide, fallback_reason

NOT_FOUND = errors.status_error(400, "gone", code="previous_response_not_found")
LIMIT = errors.status_error(400, "60 minutes", code="websocket_connection_limit_reached")
TOO_BIG = errors.ConnectionClosed("too big", code=1009)
DROPPED = errors.ConnectionClosed("dropped", code=1006)


@pytest.mark.parametrize(
    ("failure", "action"),
    [
        (Failure("connect", errors.ConnectError("refused")), Action.FALLBACK_HTTP),
        (Failure("connect", errors.Timeout("slow handshake")), Action.FALLBACK_HTTP),
        (Failure("connect", errors.status_error(426, "upgrade")), Action.FALLBACK_HTTP),
        (Failure("connect", errors.status_error(404, "no ws")), Action.FALLBACK_HTTP),
        (Failure("connect", errors.status_error(503, "busy")), Action.FALLBACK_HTTP),
        (Failure("connect", errors.status_error(401, "key")), Action.RAISE),
        (Failure("connect", errors.status_error(429, "slow down")), Action.RAISE),
        (Failure("connect", errors.ProtocolError("odd")), Action.RAISE),
        (Failure("send", DROPPED), Action.RECONNECT),
        (Failure("receive", NOT_FOUND), Action.RESEND_FULL),
        (Failure("receive", LIMIT), Action.RECONNECT),
        (Failure("receive", TOO_BIG), Action.FALLBACK_HTTP),
        (Failure("receive", DROPPED), Action.RAISE),
        (Failure("receive", errors.ConnectionClosed("idle", code=1001)), Action.RECONNECT),
        (Failure("receive", errors.ConnectionClosed("bye", code=1000)), Action.RECONNECT),
        (Failure("receive", errors.ConnectionClosed("restart", code=1012)), Action.RECONNECT),
        (Failure("receive", errors.ConnectionClosed("try later", code=1013)), Action.RECONNECT),
        (Failure("receive", errors.ConnectionClosed("internal", code=1011)), Action.RAISE),
        (Failure("receive", errors.ConnectionClosed("policy", code=1008)), Action.RAISE),
        (Failure("receive", errors.ConnectionClosed("restart", code=1012), events=1), Action.RAISE),
        (Failure("receive", errors.ConnectionClosed("idle", code=1001), events=1), Action.RAISE),
        (Failure("receive", errors.ResponseFailed("failed", code="server_error")), Action.RAISE),
        (Failure("receive", errors.Timeout("silent")), Action.RAISE),  # errors without a code
        (Failure("receive", errors.ProtocolError("odd")), Action.RAISE),
        (Failure("receive", errors.status_error(400, "bad")), Action.RAISE),
        (Failure("receive", errors.status_error(429, "limit")), Action.RAISE),
        (Failure("receive", NOT_FOUND, events=3), Action.RAISE),
        (Failure("receive", TOO_BIG, events=1), Action.RAISE),
        (Failure("receive", LIMIT, events=2), Action.RAISE),
    ],
)
def test_decide(failure: Failure, action: Action) -> None:
    assert decide(failure, resends_left=1) is action


@pytest.mark.parametrize("failure", [Failure("receive", NOT_FOUND), Failure("send", DROPPED)])
def test_resends_are_bounded(failure: Failure) -> None:
    assert decide(failure, resends_left=0) is Action.RAISE


def test_fallback_reasons_say_why() -> None:
    assert fallback_reason(Failure("receive", TOO_BIG)) == (
        "the server closed the WebSocket with 1009 (request frame too big)"
    )
    assert "426" in fallback_reason(Failure("connect", errors.status_error(426, "x")))
    assert "ConnectError" in fallback_reason(Failure("connect", errors.ConnectError("x")))


def test_cooldown_grows_is_capped_and_resets() -> None:
    cooldown = Cooldown(initial=1.0, maximum=5.0)
    assert not cooldown.active(100.0)
    assert cooldown.failed(100.0) == 1.0
    assert cooldown.active(100.5)
    assert not cooldown.active(101.0)
    assert [cooldown.failed(200.0) for _ in range(4)] == [2.0, 4.0, 5.0, 5.0]
    cooldown.succeeded()
    assert not cooldown.active(200.0)
    assert not cooldown.active(0.0)  # whatever the clock's origin
    assert cooldown.failed(300.0) == 1.0


def test_the_default_cooldown_is_thirty_seconds_doubling_to_ten_minutes() -> None:
    cooldown = Cooldown()
    waits = [cooldown.failed(0.0) for _ in range(8)]
    assert waits == [30.0, 60.0, 120.0, 240.0, 480.0, 600.0, 600.0, 600.0]
    for _ in range(100):  # the doubling is bounded: no overflow after many failures
        assert cooldown.failed(0.0) == 600.0
    unbounded = Cooldown(initial=1.0, maximum=float("inf"))
    assert [unbounded.failed(0.0) for _ in range(40)][-10:] == [2.0**30] * 10  # ~34 years
    # The provider documents the same defaults and passes them on.
    parameters = inspect.signature(Provider).parameters
    assert parameters["ws_cooldown"].default == Cooldown().initial
    assert parameters["ws_cooldown_max"].default == Cooldown().maximum
