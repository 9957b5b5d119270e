"""Remote hangups through ZuckZapGo's call events (GET /call/{id}/events, Server-Sent Events), and the fall back
to polling /call/status where a build has no such stream: the agent against the fake over real sockets, on a
virtual clock (tests/test_zuckzapgo_agent.py has the set-up explained)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from zapvoice.agent.zuckzapgo.protocol import EventsUnavailable, ZuckZapGoAPI, _sse_phases

from tests.support.fake_zuckzapgo import build_fake_zuckzapgo
from tests.support.servers import ServedHere
from tests.support.zuckzapgo_harness import INSTANCE_TOKEN, Harness, running_agent
from zapvoice.composition import load_voices, load_whisper

NEVER_S = 3600.0  # a poll interval no test lives to see: only the events can tell the agent


@pytest.fixture(scope="module")
def engines(make_settings):
    settings = make_settings()
    return load_whisper(settings), load_voices(settings)


def settings_for(make_settings, zuckzapgo: ServedHere, loop_llm, tmp_path, poll_s: float):
    return make_settings(zuckzapgo_url=zuckzapgo.url, zuckzapgo_token=INSTANCE_TOKEN, zuckzapgo_poll_s=poll_s,
                         agent_record_dir=tmp_path / "calls", agent_greeting="Olá!", agent_idle_prompt_s=600.0,
                         llm_url=f"{loop_llm.url}/v1")


def hang_up_remotely(settings, engines, clock, zuckzapgo: ServedHere, loop_llm):
    """Ring (the agent answers on its first poll, at start), let the greeting play, hang up at the far end;
    what the call record says and the events requests the agent made."""
    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with zuckzapgo.serving(), loop_llm.serving():
            call_id = await phone.ring()
            async with running_agent(settings, engines, clock) as agent:
                await phone.reply_after(call_id, 0.0)
                await phone.http.post(f"/_fake/calls/{call_id}/hangup")
                while call_id in agent.calls:
                    await asyncio.sleep(0.06)
            requests = (await phone.http.get("/_fake/requests")).json()
        return requests
    requests = clock.run(scenario())
    (record,) = [[json.loads(line) for line in path.read_text().splitlines()]
                 for path in sorted(settings.agent.record_dir.rglob("*.jsonl"))]
    return record[-1], [r for r in requests if r["path"].endswith("/events")]


def test_with_call_events_a_remote_hangup_is_known_at_once(make_settings, engines, clock, loop_llm, tmp_path):
    zuckzapgo = ServedHere(build_fake_zuckzapgo(INSTANCE_TOKEN, enabled=True, clock=clock, call_events="sse"))
    settings = settings_for(make_settings, zuckzapgo, loop_llm, tmp_path, poll_s=NEVER_S)
    ended, events = hang_up_remotely(settings, engines, clock, zuckzapgo, loop_llm)
    assert ended["event"] == "call_ended" and ended["reason"] == "remote hangup"
    assert len(events) == 1 and events[0]["token_ok"]


@pytest.mark.parametrize("call_events", ["none", "json"])
def test_without_call_events_the_poll_still_tells(make_settings, engines, clock, loop_llm, tmp_path, call_events):
    zuckzapgo = ServedHere(build_fake_zuckzapgo(INSTANCE_TOKEN, enabled=True, clock=clock, call_events=call_events))
    settings = settings_for(make_settings, zuckzapgo, loop_llm, tmp_path, poll_s=0.3)
    ended, events = hang_up_remotely(settings, engines, clock, zuckzapgo, loop_llm)
    assert ended["reason"] == "remote hangup" and len(events) == 1


@pytest.mark.parametrize(("call_events", "status"), [("none", 404), ("json", 200)])
def test_a_build_without_the_stream_is_told_apart(clock, call_events, status):
    zuckzapgo = ServedHere(build_fake_zuckzapgo(INSTANCE_TOKEN, enabled=True, clock=clock, call_events=call_events))

    async def scenario():
        async with zuckzapgo.serving():
            call_id = await Harness(zuckzapgo.url).ring()
            api = ZuckZapGoAPI(zuckzapgo.url, INSTANCE_TOKEN)
            try:
                with pytest.raises(EventsUnavailable) as refused:
                    async for _ in api.call_phases(call_id):
                        pass
                return refused.value
            finally:
                await api.aclose()
    refusal = clock.run(scenario())
    assert refusal.status == status


def test_sse_phases_are_read_from_json_or_text_and_comments_are_skipped():
    stream = [": keep-alive", "", "event: phase", 'data: {"callId": "c", "phase": "Active"}', "",
              "id: 7", "data: ended", "", 'data: {"other": 1}', "", "data: {\"state\":", 'data: "ringing"}', ""]

    async def lines():
        for line in stream:
            yield line

    async def read():
        return [phase async for phase in _sse_phases(lines())]
    assert asyncio.run(read()) == ["active", "ended", "ringing"]


def test_the_events_are_asked_for_with_the_token_header_not_in_the_url():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"code": 404, "error": "not found", "success": False})

    async def ask():
        api = ZuckZapGoAPI("http://zzg", "secret-token", client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
        with pytest.raises(EventsUnavailable):
            async for _ in api.call_phases("call/1"):
                pass
        await api.aclose()
    asyncio.run(ask())
    assert str(seen[0].url) == "http://zzg/call/call%2F1/events" and seen[0].headers["token"] == "secret-token"
