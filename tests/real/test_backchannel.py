"""Backchannels against real interruptions with real Whisper base deciding (tests/support/backchannel.py): the
real voice joe says "yeah" 2 s into the bot's reply and the reply goes on, unanswered; a real LibriVox
sentence over it still stops the bot within 300 ms and is answered. Virtual clock; the fake LLM is instant."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.support.backchannel import Phrase, caller_audio, reference_frames, talk_over
from tests.support.turn_taking import read_clip, settings
from zapvoice.composition import load_voices

STT_S = 0.3  # call time per transcription, as bench_backchannel


@pytest.fixture(scope="module")
def voice(real) -> Path:
    return real["joe_voice"]


@pytest.fixture(scope="module")
def tts(voice):
    engine = load_voices(settings(Path(tempfile.gettempdir()), voice))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def stt(real_engines):
    return real_engines[0]


@pytest.fixture(scope="module")
def full_reply(tts, voice) -> int:
    return reference_frames(tts, voice)


def test_a_yeah_over_the_reply_keeps_it(tts, voice, stt, full_reply):
    outcome = talk_over(tts, voice, stt, caller_audio(tts, Phrase("yeah", "joe", True)), full_reply, delay_s=STT_S)

    assert [text.lower().strip(".!") for text in outcome.transcripts] == ["yeah"], outcome
    assert outcome.kept and not outcome.answered and outcome.lost_ms == 0, outcome
    assert outcome.backchannels == 1
    assert outcome.silent_ms < 1500  # paused while they spoke, then the reply went on


def test_a_real_sentence_over_the_reply_still_stops_it_and_is_answered(tts, voice, stt, full_reply, real):
    clip = next(c for c in real["clips"] if not c.name.isdigit())
    outcome = talk_over(tts, voice, stt, read_clip(clip.audio), full_reply, delay_s=STT_S)

    assert not outcome.kept and outcome.answered and outcome.lost_ms > 0, outcome
    assert outcome.stop_ms <= 300
    assert outcome.backchannels == 0
