"""`zapvoice zuckzapgo setup` against instances that read the call events differently, or drop calls.

The guide subscribes to `Call`; ZuckZapGo's Postman collection lists CallOffer, CallAccept, CallTerminate,
CallOfferNotice and CallRelayLatency and no `Call`. The fake keeps only the names it knows (as wuzapi discards
the others), and lets a call ring only under a subscription that rings.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from zapvoice.agent.zuckzapgo.protocol import ZuckZapGoAPI
from zapvoice.agent.zuckzapgo.setup import enable_manual_mode

from tests.support.fake_zuckzapgo import FakeState, build_fake_zuckzapgo
from tests.support.servers import serve_in_thread

TOKEN = "setup-token-19c4"
GUIDE = {"Message", "Call"}
POSTMAN = {"Message", "CallOffer", "CallAccept", "CallTerminate", "CallOfferNotice", "CallRelayLatency"}


def set_up(state: FakeState) -> tuple[list[str], list[str], dict]:
    """Run setup twice against a fresh fake with `state`; the two reports and an inbound call's answer."""
    running = serve_in_thread(build_fake_zuckzapgo(TOKEN, state=state))
    try:
        async def scenario():
            api = ZuckZapGoAPI(running.url, TOKEN)
            try:
                return await enable_manual_mode(api, reconnect_pause_s=0), await enable_manual_mode(api, 0)
            finally:
                await api.aclose()
        first, second = asyncio.run(scenario())
        ring = httpx.post(f"{running.url}/_fake/inbound", json={"from": "5521999999999"}).json()
        listed = httpx.get(f"{running.url}/call/status", headers={"token": TOKEN}).json()["data"]["calls"]
    finally:
        running.stop()
    return first, second, {**ring, "listed": [call["callId"] for call in listed]}


@pytest.mark.parametrize(("known", "kept"), [
    (GUIDE, "call events Call kept; it does not know CallOffer, CallAccept, CallTerminate, CallOfferNotice, "
            "CallRelayLatency (dropped)"),
    (POSTMAN, "call events CallOffer, CallAccept, CallTerminate, CallOfferNotice, CallRelayLatency kept; it does "
              "not know Call (dropped)"),
])
def test_both_readings_of_the_call_events_make_calls_ring(known, kept):
    first, second, ring = set_up(FakeState(known_events=known))
    assert f"subscriptions read back: {kept}" in first
    assert not any(line.startswith("PROBLEM") for line in first)
    assert second == ["nothing to change: the calls engine is already on in manual mode and the session gets "
                      "call events"]
    assert ring["listed"] == [ring["callId"]]


def test_an_instance_that_knows_no_call_event_is_a_problem():
    first, _, ring = set_up(FakeState(known_events={"Message"}))
    assert any(line.startswith("PROBLEM: the instance kept none of the call events (subscriptions now: Message)")
               for line in first), first
    assert ring["listed"] == []


@pytest.mark.parametrize(("state", "says"), [
    (FakeState(skip_calls=True), "PROBLEM: this instance skips calls (/session/skipcalls/config is enabled)"),
    (FakeState(global_skip_calls=True), "PROBLEM: the ZuckZapGo server skips calls for every instance "
                                        "(GLOBAL_SKIP_CALLS)"),
])
def test_skipping_calls_is_reported_even_when_nothing_else_changes(state, says):
    first, second, ring = set_up(state)
    assert first[-1].startswith(says) and second[-1].startswith(says)
    assert ring["skipped"] is True and ring["listed"] == []
