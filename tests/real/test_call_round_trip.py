"""The right words go through a call, both ways, on real models: a caller plays a real recording,
real Whisper's transcript reaches the LLM, and the reply, spoken by the real English voice and
carried back over the wire, is what the caller hears (transcribed by Whisper on the caller's side).

Two transports: a WhatsApp call in manual mode (the fake ZuckZapGo, 16 kHz frames) and a 4143
gateway call (8 kHz µ-law). The calls run in real time: real models decode at their real speed.
The bot's voice is chosen by the language Whisper detected: the default voice is a Portuguese test
voice (a tone), so only the English voice's speech can be transcribed back.
"""

from __future__ import annotations

import asyncio
import io

import pytest
import soundfile
from zapvoice.agent.clock import MonotonicClock
from zapvoice.agent.gateway.commands import serving
from zapvoice.providers.contracts import Engines
from zapvoice.providers.llm import OpenAIChat

from tests.support.fake_zuckzapgo import build_fake_zuckzapgo
from tests.support.gateway_caller import GatewayCaller
from tests.support.servers import serve_in_thread
from tests.support.settings import changed
from tests.support.zuckzapgo_harness import INSTANCE_TOKEN, Harness, running_agent
from zapvoice.audio import to_int16
from zapvoice.evaluation import read_clip
from zapvoice.word_errors import word_errors

MAX_HEARD_WER = 0.15  # caller -> LLM: Whisper on the caller's real speech
MAX_SPOKEN_WER = 0.25  # LLM -> caller: Whisper on Piper's speech of Whisper's words (a misheard word is hard to say)


def spoken_reply(transcript: str) -> str:
    """What the fake LLM's echo-en model answers, as the voice says it (markdown and emoji removed)."""
    return f"You said: {transcript}"


def last_user_message(fake_llm) -> str:
    return fake_llm.requests[-1]["json"]["messages"][-1]["content"]


def check_both_ways(clip, fake_llm, stt, heard) -> None:
    transcript = last_user_message(fake_llm)
    assert word_errors(clip.text, transcript).rate <= MAX_HEARD_WER, (clip.text, transcript)
    back = asyncio.run(stt.transcribe(heard, "en")).text
    assert word_errors(spoken_reply(transcript), back).rate <= MAX_SPOKEN_WER, (spoken_reply(transcript), back)
    print(f"caller said {clip.text!r}; LLM got {transcript!r}; caller heard {back!r}")


def replied_and_quiet(phone: GatewayCaller, after_s: float, quiet_s: float = 1.5) -> bool:
    """The bot has spoken since `after_s` and then been quiet for `quiet_s`: its whole reply is heard."""
    segments = phone.segments()
    return bool(segments) and segments[-1][0] > after_s and phone.now() - segments[-1][1] >= quiet_s


@pytest.fixture()
def settings(real_settings, tmp_path):
    return real_settings(llm_model="echo-en", agent_record_dir=tmp_path / "calls",
                         agent_greeting="Olá! Aqui é a clínica.", agent_idle_prompt_s=60.0)


def test_a_whatsapp_call_understands_the_caller_and_is_understood(settings, real_engines, real, fake_llm):
    clip = real["clips"][4]  # "he might even have been made amiable himself", 3.3 s
    zuckzapgo = serve_in_thread(build_fake_zuckzapgo(INSTANCE_TOKEN, frame_s=0.06, enabled=True))
    settings = changed(settings, zuckzapgo_url=zuckzapgo.url, zuckzapgo_token=INSTANCE_TOKEN, zuckzapgo_poll_s=0.3)

    async def scenario():
        phone = Harness(zuckzapgo.url)
        async with running_agent(settings, real_engines, MonotonicClock()):
            call_id = await phone.greeted()
            end = await phone.say(call_id, to_int16(read_clip(clip)).tobytes())
            await phone.reply_after(call_id, end, quiet_s=1.5)
            heard = (await phone.http.get(f"/_fake/calls/{call_id}/heard.wav")).content
            await phone.http.post(f"/_fake/calls/{call_id}/hangup")
            return end, heard

    try:
        end, heard = asyncio.run(scenario())
    finally:
        zuckzapgo.stop()
    samples, rate = soundfile.read(io.BytesIO(heard), dtype="float32")
    check_both_ways(clip, fake_llm, real_engines[0], samples[round(end * rate):])


def test_a_gateway_call_in_mulaw_understands_the_caller_and_is_understood(settings, real_engines, real, fake_llm):
    clip = real["clips"][3]  # "had he married a more a amiable woman he might have been made still more ...", 6.0 s
    settings = changed(settings, gateway_port=0, gateway_sample_rate=8000, gateway_encoding="mulaw")

    async def scenario():
        stt, tts = real_engines
        backends = Engines(stt, OpenAIChat(settings.llm), tts)
        try:
            async with serving(settings, backends, MonotonicClock()) as server:
                async with GatewayCaller(f"ws://127.0.0.1:{server.port}", rate=8000, encoding="mulaw") as phone:
                    await phone.call()
                    await phone.reply_after(0.0)  # the greeting
                    _, end = await phone.say(read_clip(clip))
                    await phone.until(lambda: replied_and_quiet(phone, end), timeout_s=30)
                    return phone.heard_audio(end)
        finally:
            await backends.llm.aclose()

    check_both_ways(clip, fake_llm, real_engines[0], asyncio.run(scenario()))
