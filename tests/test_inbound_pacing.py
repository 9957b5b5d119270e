"""The gateway and the playground hold a call's inbound audio to real time: a flood is dropped before it is
decoded."""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.applications import Starlette
from websockets.asyncio.client import connect
from zapvoice.agent.browser.protocol import FRAME_BYTES
from zapvoice.agent.browser.server import Playground
from zapvoice.agent.inbound_pacing import RealTimeGate
from zapvoice.providers.contracts import Engines
from zapvoice.providers.llm import OpenAIChat

from tests.conftest import TOKEN
from tests.support.servers import ServedHere
from zapvoice.composition import load_voices, load_whisper

SECOND = bytes(16000)  # s16le at 8 kHz


class ManualClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t


class Socket:
    label = "call test"

    def __init__(self) -> None:
        self.warned: list[tuple[str, str]] = []

    def warn_once(self, kind: str, message: str) -> None:
        self.warned.append((kind, message))


def gate(clock, max_ahead_s: float = 2.0) -> tuple[RealTimeGate, Socket]:
    socket = Socket()
    return RealTimeGate(socket, bytes_per_s=16000, max_ahead_s=max_ahead_s, clock=clock,
                        limit_name="gateway.max_ahead_s"), socket


def test_audio_at_real_time_always_passes():
    clock = ManualClock()
    inbound, socket = gate(clock)
    for _ in range(3000):  # a minute of 20 ms chunks
        assert inbound.admit(SECOND[:320])
        clock.t += 0.02
    assert not socket.warned


def test_audio_ahead_of_real_time_by_more_than_the_margin_is_dropped_and_logged_once_per_burst():
    clock = ManualClock()
    inbound, socket = gate(clock)
    assert [inbound.admit(SECOND) for _ in range(5)] == [True, True, False, False, False]
    clock.t += 1.0
    assert inbound.admit(SECOND) and not inbound.admit(SECOND)  # one more second of room
    assert [kind for kind, _ in socket.warned] == ["audio ahead", "audio dropped", "audio ahead"]
    assert "3 audio messages (3.0 s of audio)" in socket.warned[1][1]


def test_a_late_gateway_catches_up_by_the_margin_only():
    clock = ManualClock()
    inbound, _ = gate(clock)
    clock.t += 60.0  # nothing came for a minute
    assert sum(inbound.admit(SECOND) for _ in range(10)) == 4  # 2 s behind allowed to catch up, 2 s ahead


def test_a_message_longer_than_the_margin_never_passes():
    inbound, socket = gate(ManualClock(), max_ahead_s=1.0)
    assert not inbound.admit(SECOND * 2)
    assert socket.warned[0][0] == "audio ahead"


def test_the_playground_drops_a_pages_audio_faster_than_real_time(make_settings, loop_llm, clock, caplog):
    """Over the playground's WebSocket on a virtual clock: 6 s of microphone sent at once, of which 2 s pass."""
    settings = make_settings(agent_greeting="", agent_idle_prompt_s=60.0, agent_record_dir="",
                             llm_url=f"{loop_llm.url}/v1")
    engines = Engines(load_whisper(settings), OpenAIChat(settings.llm), load_voices(settings))
    served = ServedHere(Starlette(routes=Playground(settings, engines, clock).routes()))

    async def scenario() -> dict:
        async with loop_llm.serving(), served.serving(), connect(f"{served.ws_url}/playground/ws") as ws:
            await ws.send(json.dumps({"type": "start", "token": TOKEN}))
            assert json.loads(await ws.recv())["type"] == "ready"
            for _ in range(100):  # 100 frames of 60 ms
                await ws.send(bytes(FRAME_BYTES))
            await clock.sleep(3.0)
            await ws.send(bytes(FRAME_BYTES))  # in time again
            await ws.send(json.dumps({"type": "hangup"}))
            while isinstance(message := await ws.recv(), bytes):
                pass
            return json.loads(message)
    try:
        with caplog.at_level(logging.WARNING, "zapvoice.agent.browser.protocol"):
            ended = clock.run(scenario())
    finally:
        asyncio.run(engines.aclose())
    assert ended == {"type": "ended", "reason": "the caller hung up"}
    warned = [record.getMessage() for record in caplog.records if record.name == "zapvoice.agent.browser.protocol"]
    assert len(warned) == 2 and warned[0].startswith("call browser-")
    assert warned[0].endswith("audio 2.0 s ahead of real time: dropping what comes faster "
                              "(the playground's max_ahead_s 2)")
    assert warned[1].endswith("dropped 67 audio messages (4.0 s of audio) that came faster than real time")
