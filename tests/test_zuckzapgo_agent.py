"""The agent on WhatsApp calls, end to end: the real engines (scripted Whisper, test voices, the fake
LLM streaming), the ZuckZapGo transport over real sockets, and a fake ZuckZapGo in this process.

The fake engine, the agent and the fake LLM all run on one loop with a virtual clock
(tests/support/clock.py): call time passes only while all of them wait, so the load on the machine
cannot change what a test sees. Every time below is in call seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import httpx
import pytest
from zapvoice.agent.zuckzapgo.protocol import (
    CallNotFound,
    CallsNotEnabled,
    ZuckZapGoAPI,
    ZuckZapGoError,
    ZuckZapGoUnreachable,
)
from zapvoice.agent.zuckzapgo.setup import CALL_EVENTS, enable_manual_mode
from zapvoice.agent.zuckzapgo.webhook import create_agent_app

from tests.support.fake_zuckzapgo import build_fake_zuckzapgo
from tests.support.servers import ServedHere, serve_in_thread
from tests.support.speech import speak
from tests.support.zuckzapgo_harness import INSTANCE_TOKEN, Harness, running_agent
from zapvoice.audio import to_int16
from zapvoice.composition import load_voices, load_whisper

POLL_S = 0.3


@pytest.fixture(scope="module")
def engines(make_settings):
    settings = make_settings()
    return load_whisper(settings), load_voices(settings)


@pytest.fixture(scope="module")
def utterance() -> bytes:
    return to_int16(speak("Bom dia, eu queria marcar uma consulta.")).tobytes()


@pytest.fixture()
def zuckzapgo(clock) -> ServedHere:
    """This test's fake ZuckZapGo, on its clock, served from its loop by running()."""
    return ServedHere(build_fake_zuckzapgo(INSTANCE_TOKEN, enabled=True, clock=clock))


@pytest.fixture()
def agent_settings(make_settings, zuckzapgo, loop_llm, tmp_path):
    def make(**overrides):
        values = dict(zuckzapgo_url=zuckzapgo.url, zuckzapgo_token=INSTANCE_TOKEN, zuckzapgo_poll_s=POLL_S,
                      agent_record_dir=tmp_path / "calls", agent_greeting="Olá! Aqui é a clínica.",
                      agent_idle_prompt_s=60.0, llm_url=f"{loop_llm.url}/v1")
        values.update(overrides)
        return make_settings(**values)
    return make


def records(settings) -> list[list[dict]]:
    return [[json.loads(line) for line in path.read_text().splitlines()]
            for path in sorted(settings.agent.record_dir.rglob("*.jsonl"))]


@contextlib.asynccontextmanager
async def running(settings, engines, clock, zuckzapgo, loop_llm):
    """The fake ZuckZapGo and the fake LLM served from the test's loop, and the agent on its clock."""
    async with zuckzapgo.serving(), loop_llm.serving(), running_agent(settings, engines, clock) as agent:
        yield agent


def test_inbound_call_greeting_three_turns_and_remote_hangup(agent_settings, engines, clock, loop_llm, zuckzapgo,
                                                             utterance):
    settings = agent_settings()

    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with running(settings, engines, clock, zuckzapgo, loop_llm) as agent:
            call_id = await phone.ring()
            report = await phone.until(call_id, lambda r: r["answered_at"] is not None)
            assert report["answer_delay_s"] <= 2 * POLL_S + 0.3
            await phone.reply_after(call_id, 0.0)  # the greeting
            for _ in range(3):
                end = await phone.say(call_id, utterance)
                await phone.reply_after(call_id, end)
            await phone.http.post(f"/_fake/calls/{call_id}/hangup")
            for _ in range(100):
                if call_id not in agent.calls:
                    break
                await asyncio.sleep(0.06)
            assert call_id not in agent.calls, "the agent did not notice the remote hangup"
            return await phone.until(call_id, lambda r: r["ws_closed_by"] is not None)

    report = clock.run(scenario())
    assert report["ended_by"] == "peer" and report["ws_closed_by"] == "client"
    assert len(report["heard_segments"]) >= 4
    assert report["client_bad_sizes"] == 0 and report["client_messages"] > 50
    assert report["max_queue_frames"] <= 3
    assert report["hangup_requests"] == 0
    (call,) = records(settings)
    turns = [entry for entry in call if entry["event"] == "turn"]
    assert [t["user"] for t in turns] == ["", "olá, tudo bem?", "olá, tudo bem?", "olá, tudo bem?"]
    assert turns[1]["assistant"] == "Você disse: olá, tudo bem?"
    assert call[-1] == {**call[-1], "event": "call_ended", "reason": "remote hangup", "turns": 4}


def test_barge_in_stops_the_bot_within_a_few_frames(agent_settings, engines, clock, loop_llm, zuckzapgo, utterance):
    settings = agent_settings(llm_model="story")

    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with running(settings, engines, clock, zuckzapgo, loop_llm):
            call_id = await phone.greeted()
            end = await phone.say(call_id, utterance)
            report = await phone.until(call_id, lambda r: any(seg[0] > end for seg in r["heard_segments"]))
            talking_since = next(seg[0] for seg in report["heard_segments"] if seg[0] > end)
            await clock.sleep(1.5)  # well into the long reply
            start = (await phone.http.post(f"/_fake/calls/{call_id}/say", content=utterance)).json()["start_s"]
            await phone.reply_after(call_id, start + 1.0)
            return start, talking_since, await phone.report(call_id)

    start, talking_since, report = clock.run(scenario())
    cut = next(seg for seg in report["heard_segments"] if seg[0] <= start + 0.1 < seg[1] + 0.3)
    assert cut[0] >= talking_since - 0.01
    assert cut[1] - start <= 0.45, f"the bot talked {cut[1] - start:.2f} s over the caller"
    turns = [e for e in records(settings)[0] if e["event"] == "turn"]
    assert turns[1]["interrupted"] is True


def test_the_bot_hangs_up_after_saying_goodbye(agent_settings, engines, clock, loop_llm, zuckzapgo, utterance):
    settings = agent_settings(llm_model="goodbye")

    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with running(settings, engines, clock, zuckzapgo, loop_llm):
            call_id = await phone.greeted()
            await phone.say(call_id, utterance)
            return await phone.until(call_id, lambda r: r["ended_at"] is not None)

    report = clock.run(scenario())
    assert report["ended_by"] == "app" and report["hangup_requests"] == 1
    assert report["ws_closed_by"] in ("client", "engine")
    assert records(settings)[0][-1]["reason"] == "the bot ended the call"


def test_an_idle_caller_is_prompted_then_hung_up_on(agent_settings, engines, clock, loop_llm, zuckzapgo):
    settings = agent_settings(agent_idle_prompt_s=2.0, agent_idle_hangup_s=2.0)

    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with running(settings, engines, clock, zuckzapgo, loop_llm):
            call_id = await phone.ring()
            return await phone.until(call_id, lambda r: r["ended_at"] is not None)

    report = clock.run(scenario())
    assert report["ended_by"] == "app" and len(report["heard_segments"]) == 3  # greeting, prompt, farewell
    assert records(settings)[0][-1]["reason"] == "the caller stayed silent"


def test_outbound_call_talks_once_answered(agent_settings, engines, clock, loop_llm, zuckzapgo, utterance):
    settings = agent_settings(llm_model="goodbye")

    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with running(settings, engines, clock, zuckzapgo, loop_llm) as agent:
            dialing = asyncio.create_task(agent.call("5521977776666"))
            for _ in range(100):
                calls = (await phone.http.get("/_fake/calls")).json()
                if calls:
                    break
                await asyncio.sleep(0.06)
            (call_id,) = calls
            await phone.reply_after(call_id, 0.0)
            await phone.say(call_id, utterance)
            reason = await asyncio.wait_for(dialing, 30)
            return reason, await phone.report(call_id)

    reason, report = clock.run(scenario())
    assert reason == "the bot ended the call"
    assert report["direction"] == "outbound" and report["ended_by"] == "app"
    assert all(entry["t"] is not None for entry in report["client_log"])  # nothing sent before the answer


@pytest.mark.parametrize("enabled, unreachable, status, says", [
    (False, [], 409, "zapvoice zuckzapgo setup"),
    (True, ["5521900000000"], 502, "unreachable"),
])
def test_outbound_dial_failures_say_what_to_do(make_settings, engines, clock, loop_llm, enabled, unreachable, status,
                                               says):
    zuckzapgo = ServedHere(build_fake_zuckzapgo(INSTANCE_TOKEN, enabled=enabled, clock=clock))
    settings = make_settings(zuckzapgo_url=zuckzapgo.url, zuckzapgo_token=INSTANCE_TOKEN, llm_url=f"{loop_llm.url}/v1")

    async def scenario():
        async with running(settings, engines, clock, zuckzapgo, loop_llm) as agent:
            await Harness(zuckzapgo.url).http.put("/_fake/unreachable", json={"phones": unreachable})
            with pytest.raises(ZuckZapGoError) as failure:
                await agent.call("5521900000000")
            return failure.value
    error = clock.run(scenario())
    assert error.status == status and says in error.message


def test_a_zuckzapgo_restart_ends_the_call_alone_and_the_agent_carries_on(agent_settings, engines, clock, loop_llm,
                                                                          zuckzapgo, utterance, caplog):
    settings = agent_settings()
    caplog.set_level(logging.DEBUG)

    async def scenario():
        phone = Harness(zuckzapgo.url)
        await zuckzapgo.start()
        async with loop_llm.serving(), running_agent(settings, engines, clock) as agent:
            await phone.greeted()
            await zuckzapgo.stop()
            for _ in range(200):
                if not agent.calls and agent.reachable is False:
                    break
                await asyncio.sleep(0.06)
            assert not agent.calls and agent.reachable is False
            state = zuckzapgo.app.state.fake_state
            restarted = ServedHere(build_fake_zuckzapgo(INSTANCE_TOKEN, state=state, clock=clock), port=zuckzapgo.port)
            async with restarted.serving():
                phone = Harness(restarted.url)
                second = await phone.ring()
                return await phone.reply_after(second, 0.0)

    report = clock.run(scenario())
    assert report["answered_at"] is not None and report["heard_segments"]
    ended = [e for call in records(settings) for e in call if e["event"] == "call_ended"]
    assert ended[0]["reason"] == "media socket closed"
    assert INSTANCE_TOKEN not in caplog.text


def test_calls_beyond_the_maximum_are_declined(agent_settings, engines, clock, loop_llm, zuckzapgo):
    settings = agent_settings(agent_max_calls=1)

    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with running(settings, engines, clock, zuckzapgo, loop_llm):
            first = await phone.ring("5521911111111")
            await phone.until(first, lambda r: r["answered_at"] is not None)
            second = await phone.ring("5521922222222")
            return await phone.until(second, lambda r: r["ended_at"] is not None)

    report = clock.run(scenario())
    assert report["answered_at"] is None and report["ended_by"] == "app"


def test_the_offer_webhook_answers_without_waiting_for_the_poll(agent_settings, engines, clock, loop_llm, zuckzapgo):
    settings = agent_settings(zuckzapgo_poll_s=30.0)

    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with running(settings, engines, clock, zuckzapgo, loop_llm) as agent:
            async with ServedHere(create_agent_app(agent, "hook-secret")).serving() as app:
                async with httpx.AsyncClient(base_url=app.url) as client:
                    assert (await client.post("/zuckzapgo/webhook?secret=wrong", json={})).status_code == 401
                    while agent.reachable is None:  # the first poll
                        await asyncio.sleep(0.06)
                    assert (await client.get("/health")).json()["zuckzapgo"] == "reachable"
                await phone.http.put("/_fake/webhook", json={"url": f"{app.url}/zuckzapgo/webhook?secret=hook-secret"})
                call_id = await phone.ring()
                return await phone.until(call_id, lambda r: r["answered_at"] is not None, timeout_s=5)

    report = clock.run(scenario())
    assert report["webhook_status"] == 200 and report["answer_delay_s"] < 1.0


def test_setup_enables_manual_mode_and_keeps_the_subscriptions():
    running = serve_in_thread(build_fake_zuckzapgo(INSTANCE_TOKEN))
    try:
        async def scenario():
            api = ZuckZapGoAPI(running.url, INSTANCE_TOKEN)
            try:
                first = await enable_manual_mode(api, reconnect_pause_s=0)
                second = await enable_manual_mode(api, reconnect_pause_s=0)
                return first, second, await api.calls()
            finally:
                await api.aclose()
        first, second, calls = asyncio.run(scenario())
        requests = httpx.get(f"{running.url}/_fake/requests").json()
    finally:
        running.stop()
    assert "callInboundMode: webhook -> manual" in first and "event subscriptions: Message -> Message, Call, CallOffer, CallAccept, CallTerminate, CallOfferNotice, CallRelayLatency" in first
    assert calls == [] and second[0].startswith("nothing to change")
    writes = [(r["method"], r["path"], r["json"]) for r in requests if r["method"] != "GET"]
    assert writes == [("PUT", "/call/config", {"callsEnabled": True, "callInboundMode": "manual", "callRecord": False}),
                      ("POST", "/session/disconnect", {}),
                      ("POST", "/session/connect", {"Subscribe": ["Message", *CALL_EVENTS], "Immediate": True})]
    assert all(r["token_ok"] for r in requests)


def test_the_instance_token_never_reaches_a_message():
    api = ZuckZapGoAPI("http://127.0.0.1:9", "tok/en+with spaces")
    assert api.redact(api.stream_url("call_1")).endswith("/call/call_1/stream?token=***")
    assert api.redact("x tok/en+with spaces y") == "x *** y"

    async def unreachable():
        try:
            await api.calls()
        finally:
            await api.aclose()
    with pytest.raises(ZuckZapGoError) as failure:
        asyncio.run(unreachable())
    assert failure.value.status == 0 and "tok/en" not in failure.value.message


def test_audio_frames_are_exactly_1920_bytes_and_never_far_ahead(agent_settings, engines, clock, loop_llm, zuckzapgo,
                                                                 utterance):
    settings = agent_settings(llm_model="story")

    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with running(settings, engines, clock, zuckzapgo, loop_llm):
            call_id = await phone.greeted()
            end = await phone.say(call_id, utterance)
            await phone.reply_after(call_id, end)
            return await phone.report(call_id)

    report = clock.run(scenario())
    sizes = {entry["size"] for entry in report["client_log"]}
    assert sizes == {1920}
    assert report["max_queue_frames"] <= 3
    assert report["underrun_ticks"] <= 2


def test_the_webhook_answers_json_nested_too_deep_with_a_400():
    class IdleAgent:
        calls: dict = {}
        reachable = True

        def poll_soon(self) -> None:
            pass

    app = serve_in_thread(create_agent_app(IdleAgent(), "hook-secret"))
    try:
        answer = httpx.post(f"{app.url}/zuckzapgo/webhook?secret=hook-secret", content=b"[" * 100_000 + b"]" * 100_000,
                            headers={"Content-Type": "application/json"})
    finally:
        app.stop()
    assert answer.status_code == 400 and "nested too deep" in answer.json()["error"]


def test_the_refusals_the_agent_acts_on_are_typed():
    """An engine that is off, a call that is gone and an instance that does not answer are told
    apart by type, as the agent, the setup and the exit codes need; other refusals stay plain."""
    off = serve_in_thread(build_fake_zuckzapgo(INSTANCE_TOKEN, enabled=False))
    on = serve_in_thread(build_fake_zuckzapgo(INSTANCE_TOKEN, enabled=True))

    async def refusals() -> list[type]:
        engine_off, engine_on = ZuckZapGoAPI(off.url, INSTANCE_TOKEN), ZuckZapGoAPI(on.url, INSTANCE_TOKEN)
        wrong_token, nowhere = ZuckZapGoAPI(on.url, "not-the-token"), ZuckZapGoAPI("http://127.0.0.1:9", INSTANCE_TOKEN)
        attempts = [engine_off.calls(), engine_off.dial("5521900000000"), engine_on.answer("no-such-call"),
                    engine_on.hang_up("no-such-call"), wrong_token.calls(), nowhere.calls()]
        try:
            return [type(result) for result in await asyncio.gather(*attempts, return_exceptions=True)]
        finally:
            for api in (engine_off, engine_on, wrong_token, nowhere):
                await api.aclose()
    try:
        got = asyncio.run(refusals())
    finally:
        off.stop()
        on.stop()
    assert got == [CallsNotEnabled, CallsNotEnabled, CallNotFound, CallNotFound, ZuckZapGoError, ZuckZapGoUnreachable]
