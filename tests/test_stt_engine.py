"""The Whisper engine below the HTTP layer: one encoder pass per phone utterance."""

import faster_whisper
import numpy as np
import pytest
from zapvoice.providers.stt import SingleEncodeWhisper

from tests.conftest import SCRIPTED_TEXT
from tests.support.speech import speak


@pytest.fixture(scope="module")
def model(model_files):
    return SingleEncodeWhisper(str(model_files["whisper"]), device="cpu", compute_type="int8", local_files_only=True)


@pytest.fixture()
def encoder_passes(monkeypatch):
    passes = []
    original = faster_whisper.WhisperModel.encode

    def counting(self, features):
        passes.append(features.shape)
        return original(self, features)

    monkeypatch.setattr(faster_whisper.WhisperModel, "encode", counting)
    return passes


def transcribe(model, audio, language):
    segments, info = model.transcribe(audio, language=language, beam_size=1, temperature=0.0,
                                      without_timestamps=True, condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segments), info.language


@pytest.mark.parametrize("language", [None, "pt", "en"])
def test_one_encoder_pass_per_short_utterance(model, encoder_passes, language):
    text, detected = transcribe(model, speak("Olá, tudo bem com você?"), language)
    assert text == SCRIPTED_TEXT
    assert detected == (language or "pt")
    assert len(encoder_passes) == 1


def test_long_audio_keeps_faster_whispers_own_path(model, encoder_passes):
    audio = np.tile(speak("Olá, tudo bem com você?"), 20)[: 40 * 16000]
    text, _ = transcribe(model, audio, None)
    assert text.count(SCRIPTED_TEXT) == 2  # one per 30 s window
    assert len(encoder_passes) == 3  # detection, then each window: nothing reused across windows


def test_no_stale_encoding_after_a_failed_call(model, encoder_passes):
    model._detection.encoding = "stale"
    text, _ = transcribe(model, speak("Bom dia"), "pt")
    assert text == SCRIPTED_TEXT and len(encoder_passes) == 1
