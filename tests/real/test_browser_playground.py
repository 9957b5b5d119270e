"""The playground in a real browser: headless Chromium opens /playground on the real service, its fake
microphone plays a real recording, real Whisper hears it, the fake LLM echoes it, the real English voice
says the answer, and the page plays it; then /calls shows the call with its waterfall.

What the page received is transcribed back, so the test fails if the audio is lost or garbled on the
way to the browser, not only if none arrives. Screenshots go to ZAPVOICE_SCREENSHOTS (or the test's tmp
dir); the round trips the page measured are printed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import TOKEN
from tests.real.test_call_round_trip import MAX_HEARD_WER, MAX_SPOKEN_WER, spoken_reply
from tests.support.browser import BrowserMissing, chromium_with_microphone, screenshot_dir
from zapvoice.audio import PIPELINE_RATE, from_int16
from zapvoice.evaluation import read_clip
from zapvoice.word_errors import word_errors

LEAD_S, TAIL_S = 4.0, 40.0  # silence before the words (the greeting plays) and after (the loop restarts late)
WAIT_MS = 90_000  # real models on a shared machine: the whole call runs in real time


@pytest.fixture()
def service(make_service, real_settings, real, tmp_path):
    """The real service (Whisper base; the Portuguese test voice by default, the real English one for English)."""
    return make_service(whisper_model=str(real["whisper_base"]), voices=real_settings().tts.voices,
                        llm_model="echo-en", agent_record_dir=tmp_path / "calls", agent_idle_prompt_s=60.0)


@pytest.fixture()
def microphone(real, tmp_path):
    clip = real["clips"][4]  # "he might even have been made amiable himself", 3.3 s
    speech = np.concatenate([np.zeros(round(LEAD_S * PIPELINE_RATE), np.float32), read_clip(clip),
                             np.zeros(round(TAIL_S * PIPELINE_RATE), np.float32)])
    wav = tmp_path / "caller.wav"
    soundfile.write(wav, speech, PIPELINE_RATE, subtype="PCM_16")
    return clip, wav


@contextlib.contextmanager
def chromium_or_skip(wav: Path, profile: Path) -> Iterator:
    try:
        with chromium_with_microphone(wav, profile) as context:
            yield context
    except BrowserMissing as missing:
        if os.environ.get("ZAPVOICE_REAL_REQUIRED"):
            pytest.fail(f"no browser and ZAPVOICE_REAL_REQUIRED is set: {missing}")
        pytest.skip(str(missing))


@pytest.fixture()
def browser(microphone, tmp_path):
    with chromium_or_skip(microphone[1], tmp_path / "profile") as context:
        yield context


def test_a_browser_talks_to_the_agent_and_sees_the_call(service, browser, microphone, real_engines, tmp_path):
    clip, _ = microphone
    shots = screenshot_dir(tmp_path / "screenshots")
    page = browser.new_page()
    page.goto(f"{service.url}/playground")

    page.click("#start")  # no token saved yet: the server refuses, the page asks for it
    page.wait_for_selector("#token-form:not([hidden])", timeout=WAIT_MS)
    assert page.evaluate("zapvoice.error") == "missing or wrong token (service.token)"
    page.fill("#token", TOKEN)
    page.click("#token-form button")
    page.wait_for_function("zapvoice.turns.some(turn => turn.user)", timeout=WAIT_MS)
    page.wait_for_function("zapvoice.samplesPlayed * 2 >= zapvoice.bytesReceived - 3840", timeout=WAIT_MS)
    page.screenshot(path=str(shots / "playground.png"))
    state = page.evaluate("({turns: zapvoice.turns, roundTrips: zapvoice.roundTrips, played: zapvoice.samplesPlayed,"
                          " peak: zapvoice.peakPlayed, sent: zapvoice.framesSent, audio: zapvoice.receivedBase64()})")
    page.click("#stop")
    page.wait_for_function("zapvoice.status === 'ended'", timeout=WAIT_MS)
    assert page.evaluate("zapvoice.ended") == "the caller hung up"

    greeting, answer = state["turns"][0], next(turn for turn in state["turns"] if turn["user"])
    assert word_errors(clip.text, answer["user"]).rate <= MAX_HEARD_WER, (clip.text, answer["user"])
    assert answer["assistant"] == spoken_reply(answer["user"])
    received = np.frombuffer(base64.b64decode(state["audio"]), "<i2")
    reply = from_int16(received[greeting["received_bytes"] // 2: answer["received_bytes"] // 2])
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        back = thread.submit(asyncio.run, real_engines[0].transcribe(reply, "en")).result().text
    assert word_errors(spoken_reply(answer["user"]), back).rate <= MAX_SPOKEN_WER, (answer["assistant"], back)
    assert state["played"] >= received.size - 1920 and state["peak"] > 0.05  # played, and not silence
    caller_line = page.locator("#transcript li.caller").first.inner_text()
    bot_lines = page.locator("#transcript li.bot").all_inner_texts()
    assert answer["user"] in caller_line and any(answer["assistant"] in line for line in bot_lines)
    (round_trip,) = state["roundTrips"]  # one answer, timed by the page: last loud mic frame → first sample played
    print(f"page round trip {round_trip:.0f} ms; server: stt {answer['stt_ms']} ms, first token "
          f"{answer['first_token_ms']} ms, first audio {answer['first_audio_ms']} ms; caller said {clip.text!r}, "
          f"Whisper heard {answer['user']!r}, the page received {back!r}")

    page.goto(f"{service.url}/calls")
    row = page.locator("#calls tr").first
    row.wait_for(timeout=WAIT_MS)
    cells = row.locator("td").all_inner_texts()
    assert cells[1:3] == ["playground", "browser"] and cells[4:] == ["2", "the caller hung up"], cells
    page.screenshot(path=str(shots / "calls.png"))
    row.locator("a").click()
    page.wait_for_selector("#turns .waterfall", timeout=WAIT_MS)
    bars = page.locator("#turns .waterfall .bar")
    assert [bars.nth(n).get_attribute("class") for n in range(bars.count())] == ["bar stt", "bar llm", "bar tts"]
    assert answer["user"] in page.locator("#turns .caller").inner_text()
    page.screenshot(path=str(shots / "call.png"), full_page=True)


# Every AudioContext the page makes is kept where the test can see its state; the microphone is refused.
NO_MICROPHONE = """
window.contexts = [];
const Context = window.AudioContext;
window.AudioContext = class extends Context {
  constructor(...args) { super(...args); window.contexts.push(this); }
};
navigator.mediaDevices.getUserMedia = () => Promise.reject(new Error("refused by the test"));
"""


def test_a_start_that_fails_closes_its_audio_context(make_service, tmp_path):
    service = make_service()
    wav = tmp_path / "silence.wav"
    soundfile.write(wav, np.zeros(PIPELINE_RATE, np.float32), PIPELINE_RATE, subtype="PCM_16")
    with chromium_or_skip(wav, tmp_path / "profile") as context:
        page = context.new_page()
        page.add_init_script(NO_MICROPHONE)
        page.goto(f"{service.url}/playground")
        page.click("#start")
        page.wait_for_function("zapvoice.status === 'failed'", timeout=WAIT_MS)
        assert page.evaluate("zapvoice.error") == "no microphone (refused by the test)"
        page.wait_for_function("contexts.length === 1 && contexts[0].state === 'closed'", timeout=10_000)
        assert not page.locator("#start").is_disabled()  # and the page can try again
