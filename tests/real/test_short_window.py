"""Short-window encoding (stt.short_window) hears real speech as well as the padded window does.

Real Whisper base and tiny.en, the 10 real English clips, at 16 kHz and through a µ-law line, scored
by `zapvoice eval`'s code. The defaults were chosen where the WER stays within 1 point of the padded
window (benchmarks/bench_short_window.py); on 92 words that is no more errors than the padded window,
plus one word of room for a different CPU's rounding. A window too short (2 s, no padding) makes
greedy decoding loop on these clips: that must be caught and redone, not heard.
"""

from __future__ import annotations

import asyncio

import faster_whisper
import pytest
from zapvoice.providers.stt import PADDED_FRAMES, WhisperSTT

from zapvoice.audio import PIPELINE_RATE, from_int16, resample
from zapvoice.evaluation import evaluate, format_report, read_clip
from zapvoice.settings import STTSettings
from zapvoice.word_errors import word_errors

SPARE_ERRORS = 1


@pytest.fixture()
def encoded_frames(monkeypatch):
    """Mel frames of each encoder pass, as the encoder gets them."""
    frames = []
    original = faster_whisper.WhisperModel.encode

    def recorded(self, features):
        frames.append(features.shape[-1])
        return original(self, features)

    monkeypatch.setattr(faster_whisper.WhisperModel, "encode", recorded)
    return frames


def heard(model_dir, clips, phone_line, **stt):
    engine = WhisperSTT(model_dir, STTSettings(whisper_model=str(model_dir), **stt))
    try:
        return asyncio.run(evaluate(engine, "engine", clips, "en", phone_line))
    finally:
        engine.close()


@pytest.mark.parametrize("phone_line", [None, "mulaw"])
@pytest.mark.parametrize("model", ["whisper_base", "whisper_tiny_en"])
def test_short_window_errs_no_more_than_the_padded_window(real, encoded_frames, model, phone_line):
    padded = heard(real[model], real["clips"], phone_line, short_window=False)
    assert set(encoded_frames) == {PADDED_FRAMES}
    encoded_frames.clear()
    short = heard(real[model], real["clips"], phone_line)
    print(format_report(padded), format_report(short), sep="\n")
    assert sum(frames < PADDED_FRAMES for frames in encoded_frames) >= 8  # most clips took the short window
    assert short.errors.words == 92
    assert short.errors.errors <= padded.errors.errors + SPARE_ERRORS, format_report(short)


def test_a_window_too_short_to_decode_is_redone_on_the_padded_one(real, encoded_frames):
    short = heard(real["whisper_base"], real["clips"], None, short_window_min_s=2.0, short_window_pad_s=0.0)
    print(format_report(short))
    assert PADDED_FRAMES in encoded_frames  # some decode looked degenerate and was redone
    assert short.errors.rate <= 0.08, format_report(short)


def test_the_token_cap_allows_exactly_the_tokens_it_names(real):
    """CTranslate2 stops a Whisper decode at half the max_length it is given: the cap is translated so
    that asking for 10 tokens of a 27-token sentence decodes 10, not 7."""
    engine = WhisperSTT(real["whisper_base"], STTSettings(whisper_model=str(real["whisper_base"])))
    try:
        longest = max(real["clips"], key=lambda clip: len(clip.text))
        segments, _ = engine._whisper(read_clip(longest), "en", 10, None)
    finally:
        engine.close()
    assert sum(len(segment.tokens) for segment in segments) == 10


def test_fast_dense_speech_fits_the_short_windows_token_cap(real, real_engines, encoded_frames):
    """The real voice at twice its pace says about 7 tokens a second of speech (fast Portuguese says 9):
    one short-window pass, not a redo on the padded window for reaching the cap."""
    _, tts = real_engines
    text = "It's Tom from 42 Elm Road; the order I placed on the 3rd of May still hasn't arrived."
    speech = asyncio.run(tts.speak(text, voice=real["joe_voice"].name.removesuffix(".onnx"), speed=2.0))
    engine = WhisperSTT(real["whisper_base"], STTSettings(whisper_model=str(real["whisper_base"])))
    try:
        heard = engine._transcribe(resample(from_int16(speech.pcm), speech.rate, PIPELINE_RATE), "en").text
    finally:
        engine.close()
    assert word_errors(text, heard).rate <= 0.25, heard
    assert encoded_frames == [800], (heard, encoded_frames)


@pytest.mark.parametrize("language", ["en", None])
def test_clips_transcribed_together_are_heard_as_well_as_alone(real, language):
    """The 10 clips as one batch (stt.max_batch) against one by one, with English forced and detected."""
    engine = WhisperSTT(real["whisper_base"], STTSettings(whisper_model=str(real["whisper_base"])))
    clips = real["clips"]
    try:
        alone = [engine._transcribe(read_clip(clip), language) for clip in clips]
        together = engine._transcribe_batch([(lambda clip=clip: read_clip(clip), language) for clip in clips])
    finally:
        engine.close()

    def errors(transcripts):
        return sum(word_errors(clip.text, heard.text).errors for clip, heard in zip(clips, transcripts, strict=True))

    assert all(heard.language == "en" for heard in together)
    assert errors(together) <= errors(alone) + SPARE_ERRORS, [heard.text for heard in together]
