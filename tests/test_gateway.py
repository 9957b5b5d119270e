"""The agent behind the 4143 gateway server, end to end over real sockets: the real engines (scripted
Whisper, test voices, the fake LLM streaming), the server in this process, and a WebSocket client in
the gateway's role (tests/support/gateway_caller.py).

The server, the caller and the fake LLM all run on one loop with a virtual clock
(tests/support/clock.py): call time passes only while all of them wait, so the load on the machine
cannot change what a test sees. Every time below is in call seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import shutil
import ssl
import subprocess

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from zapvoice.agent.conversation import KEYS_PRESSED, Conversation
from zapvoice.agent.gateway.commands import serving
from zapvoice.agent.gateway.protocol import GatewaySocket
from zapvoice.providers.contracts import Engines
from zapvoice.providers.llm import OpenAIChat

from tests.support.clock import VirtualClock
from tests.support.gateway_caller import GatewayCaller
from tests.support.servers import ServedHere
from tests.support.speech import speak
from zapvoice.composition import load_voices, load_whisper

GREETING = "Olá! Aqui é a clínica."


@pytest.fixture(scope="module")
def engines(make_settings):
    settings = make_settings()
    return load_whisper(settings), load_voices(settings)


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    return speak("Bom dia, eu queria marcar uma consulta.")


@pytest.fixture()
def gateway_settings(make_settings, tmp_path, loop_llm):
    def make(**overrides):
        values = dict(gateway_port=0, agent_record_dir=tmp_path / "calls", agent_greeting=GREETING,
                      agent_idle_prompt_s=60.0, llm_url=f"{loop_llm.url}/v1")
        values.update(overrides)
        return make_settings(**values)
    return make


@contextlib.asynccontextmanager
async def gateway(settings, engines, clock: VirtualClock, loop_llm: ServedHere, echo: bool = False):
    stt, tts = engines
    backends = None if echo else Engines(stt, OpenAIChat(settings.llm), tts)
    try:
        async with loop_llm.serving(), serving(settings, backends, clock) as server:
            yield server
    finally:
        if backends is not None:
            await backends.llm.aclose()


def caller(server, clock: VirtualClock, **options) -> GatewayCaller:
    return GatewayCaller(f"ws://127.0.0.1:{server.port}", rate=server.settings.sample_rate,
                         encoding=server.settings.encoding, clock=clock, **options)


def records(settings) -> list[list[dict]]:
    return [[json.loads(line) for line in path.read_text().splitlines()]
            for path in sorted(settings.agent.record_dir.rglob("*.jsonl"))]


async def until(check, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


@pytest.mark.parametrize("rate, encoding", [(8000, "pcm16"), (16000, "pcm16"), (8000, "mulaw")])
def test_a_call_greets_answers_two_turns_and_ends_when_the_caller_hangs_up(gateway_settings, engines, clock, loop_llm,
                                                                           utterance, rate, encoding):
    settings = gateway_settings(gateway_sample_rate=rate, gateway_encoding=encoding)

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as phone:
            answer_s = await phone.call(caller_id="5521977776666", did="551140041234", session_id="sess-42")
            await phone.reply_after(0.0)  # the greeting
            for _ in range(2):
                _, end = await phone.say(utterance)
                start, _ = await phone.reply_after(end)
                assert start - end < 1.5
            await phone.hang_up()
            await until(lambda: not server.calls)
            return answer_s, phone

    answer_s, phone = clock.run(scenario())
    assert answer_s < 0.2
    assert len(phone.segments()) == 3 and phone.named("answer") == phone.events[:1]
    assert not phone.named("hangup") and not phone.text  # the caller hung up: no hangup back
    bytes_per_chunk = round(rate * 0.02) * (2 if encoding == "pcm16" else 1)
    sizes = [size for _, size in phone.audio]
    assert sizes.count(bytes_per_chunk) >= len(sizes) - 2  # the resampler holds a few samples at first
    assert phone.max_ahead_s <= 0.1
    (call,) = records(settings)
    assert call[0] == {**call[0], "event": "call_started", "call_id": "sess-42", "transport": "gateway",
                       "caller": "5521977776666", "called": "551140041234", "extra": {"session_id": "sess-42"}}
    turns = [entry for entry in call if entry["event"] == "turn"]
    assert [t["user"] for t in turns] == ["", "olá, tudo bem?", "olá, tudo bem?"]
    assert call[-1]["reason"] == "the caller hung up"
    assert "Caller: 5521977776666." in loop_llm.app.state.requests[-1]["json"]["messages"][0]["content"]


def test_barge_in_stops_the_bot_within_300_ms(gateway_settings, engines, clock, loop_llm, utterance):
    settings = gateway_settings(llm_model="story")

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as phone:
            await phone.call()
            await phone.reply_after(0.0)
            start, _ = await phone.talk_over_the_reply(utterance)
            return start, await phone.until(lambda: next(
                (seg for seg in phone.segments() if seg[0] < start < seg[1] + 0.3 and phone.now() - seg[1] > 0.5),
                None))

    start, cut = clock.run(scenario())
    assert cut[1] - start <= 0.3, f"the bot talked {cut[1] - start:.2f} s over the caller"
    turns = [e for e in records(settings)[0] if e["event"] == "turn"]
    assert turns[1]["interrupted"] is True


def test_the_bot_hangs_up_once_its_goodbye_has_played(gateway_settings, engines, clock, loop_llm, utterance):
    settings = gateway_settings(llm_model="goodbye")

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as phone:
            await phone.call()
            await phone.reply_after(0.0)
            await phone.say(utterance)
            await asyncio.wait_for(phone.closed.wait(), 20)
            await until(lambda: not server.calls)
            return phone

    phone = clock.run(scenario())
    ((hangup_at, _),) = phone.named("hangup")
    assert phone.events[-1][1] == {"event": "hangup"}
    assert hangup_at >= phone.heard_until() - 0.03  # the goodbye had been heard
    assert phone.audio[-1][0] <= hangup_at
    assert phone.ws.close_code == 1000 and phone.ws.protocol.close_rcvd_then_sent  # the server closed
    assert records(settings)[0][-1]["reason"] == "the bot ended the call"


def test_keys_both_ways_and_configured_key_actions(gateway_settings, engines, clock, loop_llm, utterance):
    settings = gateway_settings(llm_model="dtmf", gateway_dtmf_actions=["0=hangup", "9=send:*2"],
                                gateway_dtmf_duration_ms=150)

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as phone:
            await phone.call()
            await phone.reply_after(0.0)
            _, end = await phone.say(utterance)  # the LLM answers and presses 1, 2, #
            await phone.reply_after(end)
            await phone.until(lambda: len(phone.named("dtmf")) == 3)
            asked = len(loop_llm.app.state.requests)
            pressed = phone.now()
            await phone.press("5")  # a turn of its own (answered with 1, 2, # again)
            await phone.reply_after(pressed)
            await phone.until(lambda: len(phone.named("dtmf")) == 6)
            keys_turn = loop_llm.app.state.requests[asked]["json"]["messages"][-1]
            await phone.press("9")  # the server presses * 2
            await phone.until(lambda: len(phone.named("dtmf")) == 8)
            pressed = phone.now()
            await phone.press("0")  # farewell, then hangup
            farewell = await phone.reply_after(pressed)
            await asyncio.wait_for(phone.closed.wait(), 10)
            return phone, keys_turn, farewell

    phone, keys_turn, farewell = clock.run(scenario())
    sent = [(t, e["digit"], e["duration"]) for t, e in phone.named("dtmf")]
    assert [digit for _, digit, _ in sent] == ["1", "2", "#", "1", "2", "#", "*", "2"]
    assert {duration for _, _, duration in sent} == {150}
    assert all(b[0] - a[0] >= 0.24 for a, b in zip(sent[:2], sent[1:3]))  # a tone and a gap apart
    assert keys_turn == {"role": "user", "content": KEYS_PRESSED.format(digits="5")}
    assert phone.named("hangup")[0][0] >= farewell[1] - 0.03
    call = records(settings)[0]
    assert call[-1]["reason"] == "the caller pressed 0"
    assert sum(1 for e in call if e["event"] == "turn" and e["user"] == KEYS_PRESSED.format(digits="5")) == 1


def test_echo_mode_plays_the_protocols_example_flow(gateway_settings, engines, clock, loop_llm, utterance):
    settings = gateway_settings(gateway_echo_hangup_s=4.0, gateway_encoding="alaw")

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm, echo=True) as server, caller(server, clock) as phone:
            await phone.call()
            start, end = await phone.say(utterance)
            await phone.press("3")
            await asyncio.wait_for(phone.closed.wait(), 10)
            return start, end, phone

    start, end, phone = clock.run(scenario())
    assert [e for _, e in phone.events] == [{"event": "answer"}, {"event": "dtmf", "digit": "1", "duration": 200},
                                            {"event": "hangup"}]
    assert 1.9 <= phone.named("dtmf")[0][0] <= 2.3 and 3.9 <= phone.named("hangup")[0][0] <= 4.3
    (echo,) = phone.segments()
    assert abs(echo[0] - start) < 0.15 and end - 0.5 < echo[1] <= end + 0.1  # the caller's speech, back at once
    assert phone.max_ahead_s <= 0.1 and {size for _, size in phone.audio} == {160}


def test_a_confused_gateway_is_logged_and_ignored(gateway_settings, engines, clock, loop_llm, utterance, caplog):
    settings = gateway_settings()
    caplog.set_level(logging.DEBUG, logger="zapvoice.agent.gateway")
    garbage = ["not json {", "[1, 2]", json.dumps({"event": "ring"}), json.dumps({"digit": "1"}),
               json.dumps({"event": "dtmf", "digit": "X"}), json.dumps({"event": "dtmf", "digit": 5}),
               "[" * 100_000]  # under the message size limit, but deeper than the JSON parser recurses

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as phone:
            await phone.send(bytes(320))  # audio before incoming_call
            await phone.send(json.dumps({"event": "dtmf", "digit": "1"}))  # and a key
            for message in garbage:
                await phone.send(message)
            await phone.call()
            await phone.reply_after(0.0)
            for message in [*garbage, bytes(33), json.dumps({"event": "incoming_call"})]:  # again, in the call
                await phone.send(message)
            _, end = await phone.say(utterance)
            await phone.reply_after(end)
            return phone

    phone = clock.run(scenario())
    assert [e for _, e in phone.events] == [{"event": "answer"}]
    logged = [(r.levelno, r.getMessage().partition(": ")[2])
              for r in caplog.records if r.name == "zapvoice.agent.gateway.protocol"]
    warned = [message for level, message in logged if level == logging.WARNING]
    assert warned.count("ignored text that is not JSON: 'not json {'") == 1  # repeats go to the debug log
    for expected in ("ignored audio before incoming_call", "ignored a dtmf event before incoming_call",
                     "ignored text that is not JSON: 'not json {'",
                     "ignored JSON that is not an event object: '[1, 2]'",
                     "ignored unknown event: 'ring'", "ignored unknown event: None",
                     f"ignored JSON nested too deeply: {'[' * 80!r}",
                     "ignored invalid dtmf digit: 'X' is not one of 0-9 * # A-D",
                     "an audio message of 33 bytes: s16le takes whole samples; dropped its last byte",
                     "ignored another incoming_call during the call"):
        assert expected in {message for _, message in logged}, logged
    turns = [e for e in records(settings)[0] if e["event"] == "turn"]
    assert [t["user"] for t in turns] == ["", "olá, tudo bem?"]


def test_a_gateway_that_vanishes_mid_reply_ends_only_its_own_call(gateway_settings, engines, clock, loop_llm,
                                                                  utterance):
    settings = gateway_settings(llm_model="story")

    async def scenario():
        async with (gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as lost,
                    caller(server, clock) as kept):
            await lost.call(session_id="lost")
            await kept.call(session_id="kept")
            await lost.reply_after(0.0)
            _, end = await lost.say(utterance)
            await lost.until(lambda: any(start > end for start, _ in lost.segments()))
            lost.ws.transport.abort()  # gone, without a close or a hangup
            await until(lambda: len(server.calls) == 1)
            _, end = await kept.say(utterance)
            await kept.until(lambda: any(start > end for start, _ in kept.segments()))
            await kept.hang_up()
            await until(lambda: not server.calls and not server.connections)

    clock.run(scenario())
    reasons = {call[0]["call_id"]: call[-1]["reason"] for call in records(settings)}
    assert reasons == {"kept": "the caller hung up", "lost": "the gateway closed the connection"}


def test_hundreds_of_connections_come_and_go_and_leave_nothing_behind(gateway_settings, engines, clock, loop_llm):
    settings = gateway_settings(gateway_incoming_timeout_s=0.5, agent_record_dir=None)

    async def one(server, n: int) -> None:
        url = f"ws://127.0.0.1:{server.port}"
        async with connect(url) as ws:
            kind = n % 5
            if kind == 1:
                await ws.send(b"\x01" * 321)
                await ws.send("{")
            if kind >= 2:
                await ws.send(json.dumps({"event": "incoming_call", "callerId": str(n), "sessionId": f"s{n}"}))
                await ws.recv()  # the answer
                await ws.send(bytes(320))
            if kind == 3:
                await ws.send(json.dumps({"event": "hangup"}))
            if kind == 4:
                ws.transport.abort()
        # kind 0: connect and close at once; kind 1: garbage, then close

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm) as server:
            await asyncio.sleep(0.1)
            baseline = len(asyncio.all_tasks())
            for batch in range(10):
                await asyncio.gather(*(one(server, batch * 30 + n) for n in range(30)), return_exceptions=True)
            async with connect(f"ws://127.0.0.1:{server.port}") as silent:  # never says incoming_call
                await asyncio.wait_for(silent.wait_closed(), 2)
            await until(lambda: not server.calls and not server.connections)
            await until(lambda: len(asyncio.all_tasks()) <= baseline)
            gc.collect()
            assert not [o for o in gc.get_objects() if type(o) in (Conversation, GatewaySocket)]  # freed
            async with caller(server, clock) as phone:  # and the server still takes calls
                await phone.call()
                await phone.reply_after(0.0)

    clock.run(scenario())


def test_calls_beyond_the_maximum_are_hung_up_unanswered(gateway_settings, engines, clock, loop_llm):
    settings = gateway_settings(agent_max_calls=1)

    async def scenario():
        async with (gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as first,
                    caller(server, clock) as second):
            await first.call()
            await second.send({"event": "incoming_call", "callerId": "5511900000000", "sessionId": "second"})
            await asyncio.wait_for(second.closed.wait(), 2)
            return second

    second = clock.run(scenario())
    assert [e for _, e in second.events] == [{"event": "hangup"}]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="makes its certificate with the openssl command")
def test_health_over_http_and_calls_over_wss(gateway_settings, engines, clock, loop_llm, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    settings = gateway_settings(gateway_certfile=cert, gateway_keyfile=key, gateway_echo_hangup_s=1.0)

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm, echo=True) as server:
            context = ssl.create_default_context(cafile=str(cert))
            async with httpx.AsyncClient(verify=context) as http:
                health = (await http.get(f"https://127.0.0.1:{server.port}/health")).json()
            async with GatewayCaller(f"wss://127.0.0.1:{server.port}", clock=clock, ssl=context) as phone:
                await phone.call()
                await asyncio.wait_for(phone.closed.wait(), 5)
            return server.url, health, phone

    url, health, phone = clock.run(scenario())
    assert url.startswith("wss://") and health == {"status": "ok", "calls": 0}
    assert [e["event"] for _, e in phone.events] == ["answer", "hangup"]


def test_audio_flooding_faster_than_real_time_is_dropped_and_the_call_goes_on(gateway_settings, engines, clock,
                                                                              loop_llm, utterance, caplog):
    settings = gateway_settings(gateway_max_ahead_s=1.0)
    caplog.set_level(logging.DEBUG, logger="zapvoice.agent.gateway")

    async def scenario():
        async with gateway(settings, engines, clock, loop_llm) as server, caller(server, clock) as phone:
            await phone.call()
            await phone.reply_after(0.0)
            for _ in range(1500):  # 30 s of audio at once
                await phone.send(bytes(320))
            _, end = await phone.say(utterance)
            await phone.reply_after(end)

    clock.run(scenario())
    warned = [r.getMessage() for r in caplog.records if r.name == "zapvoice.agent.gateway.protocol"
              and r.levelno == logging.WARNING and "ahead of real time" in r.getMessage()]
    assert len(warned) == 1  # the first burst; later ones go to the debug log
