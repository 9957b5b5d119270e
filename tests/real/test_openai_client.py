"""Real Whisper base behind /v1/audio, driven by the official `openai` client: a voice note of several
read sentences, over a minute long, as Ogg Opus (what WhatsApp sends), and speech made by /v1/audio/speech
heard back."""

from __future__ import annotations

import io

import numpy as np
import openai
import pytest

from tests.conftest import TOKEN
from zapvoice.audio import PIPELINE_RATE, encode_audio, to_int16
from zapvoice.evaluation import read_clip
from zapvoice.word_errors import word_errors

MAX_WER = 0.08  # measured: 6 errors in 155 words (3.9 %) over 69.8 s in 14 segments; /stt gives 4.3 % clip by clip


@pytest.fixture()
def api(real_service):
    with openai.OpenAI(base_url=f"{real_service.url}/v1", api_key=TOKEN, max_retries=0, timeout=300) as client:
        yield client


def test_a_long_voice_note_with_timestamps(api, real):
    clips = real["clips"]
    gap = np.zeros(PIPELINE_RATE, np.float32)
    parts, starts, at = [], [], 0.0
    while at < 65:  # past /stt's 60 s and past two of Whisper's windows
        for clip in clips:
            samples = read_clip(clip)
            starts.append(at)
            parts += [samples, gap]
            at += (samples.size + gap.size) / PIPELINE_RATE
            if at >= 65:
                break
    used = clips * (len(starts) // len(clips) + 1)
    reference = " ".join(clip.text for clip in used[:len(starts)])
    note = encode_audio(to_int16(np.concatenate(parts)), PIPELINE_RATE, "opus")
    result = api.audio.transcriptions.create(file=("note.ogg", io.BytesIO(note), "audio/ogg"), model="whisper-1",
                                             language="en", response_format="verbose_json",
                                             timestamp_granularities=["segment"])
    assert result.duration == pytest.approx(at, abs=0.1)
    errors = word_errors(reference, result.text)
    print(f"{at:.1f} s, {len(result.segments)} segments: {errors.errors} errors in {errors.words} words")
    assert errors.rate <= MAX_WER, (errors, result.text)
    ends = [s.end for s in result.segments]
    assert all(s.start < s.end for s in result.segments) and ends == sorted(ends)
    assert result.segments[-1].end > 50  # timestamps run on across windows, not from 0 in each
    srt = api.audio.transcriptions.create(file=("note.ogg", io.BytesIO(note), "audio/ogg"), model="whisper-1",
                                          language="en", response_format="srt")
    assert srt.count(" --> ") == len(result.segments)


def test_speech_heard_back(api, real):
    voice = real["joe_voice"].name.removesuffix(".onnx")
    text = "Please call me back tomorrow morning."
    spoken = api.audio.speech.create(model="tts-1", voice=voice, input=text, response_format="opus").content
    heard = api.audio.transcriptions.create(file=("reply.ogg", spoken, "audio/ogg"), model="whisper-1")
    assert word_errors(text, heard.text).rate <= 0.15, heard.text
