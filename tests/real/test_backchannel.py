"""Backchannels against real interruptions with real Whisper base deciding (tests/support/backchannel.py): the
real voice joe says "yeah" 2 s into the bot's reply and the reply goes on, unanswered; a real LibriVox
sentence over it still stops the bot within 300 ms and is answered. Virtual clock; the fake LLM is instant."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.support.backchannel import Phrase, caller_audio, echo_turned_on, reference_frames, talk_over
from tests.support.turn_taking import read_clip, settings
from zapvoice.composition import load_voices

STT_S = 0.3  # call time per transcription, as bench_backchannel


@pytest.fixture(scope="module")
def joe(real):
    """joe as the bot's only voice, and its file."""
    engine = load_voices(settings(Path(tempfile.gettempdir()), real["joe_voice"]))
    yield engine, real["joe_voice"]
    engine.close()


@pytest.fixture(scope="module")
def call(joe, real_engines):
    """talk_over(speech) for this tier's engines: joe as the bot, real Whisper base hearing the caller."""
    tts, voice = joe
    full_reply = reference_frames(tts, voice)
    return lambda speech: talk_over(tts, voice, real_engines[0], speech, full_reply, delay_s=STT_S)


def test_a_yeah_over_the_reply_keeps_it(joe, call):
    outcome = call(caller_audio(joe[0], Phrase("yeah", "joe", True)))

    assert [text.lower().strip(".!") for text in outcome.transcripts] == ["yeah"], outcome
    assert outcome.kept and not outcome.answered and outcome.lost_ms == 0, outcome
    assert outcome.backchannels == 1
    assert outcome.silent_ms < 1500  # paused while they spoke, then the reply went on


def test_a_real_sentence_over_the_reply_still_stops_it_and_is_answered(call, real):
    clip = next(c for c in real["clips"] if not c.name.isdigit())
    outcome = call(read_clip(clip.audio))

    assert not outcome.kept and outcome.answered and outcome.lost_ms > 0, outcome
    assert outcome.stop_ms <= 300
    assert outcome.backchannels == 0



@pytest.mark.parametrize("echo", [(12, 0.2), (24, 0.08)], ids=["12dB-200ms", "24dB-80ms"])
def test_an_echo_that_starts_mid_call_is_not_answered(joe, real_engines, echo):
    """A speakerphone turned on after the detector found no echo: real Whisper hears the bot's own words, which
    are dropped, and the reply plays to its end. 24 dB down the echo may make no turn at all: measured in the
    VAD's speech band it stays near vad.min_level_dbfs, in bursts dropped as noise."""
    tts, voice = joe
    outcome = echo_turned_on(tts, voice, real_engines[0], echo, delay_s=STT_S)
    assert outcome.echo_answered == 0 and outcome.reply_whole, outcome
    assert outcome.own_echo >= 1 or not outcome.transcripts, outcome
