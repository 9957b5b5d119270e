"""The Whisper engine below the HTTP layer: one encoder pass per phone utterance."""

from types import SimpleNamespace

import faster_whisper
import numpy as np
import pytest
from zapvoice.providers.errors import ProviderError
from zapvoice.providers.stt import SingleEncodeWhisper, WhisperSTT, degenerate, short_window_frames

from tests.conftest import SCRIPTED_TEXT
from tests.model_builders.whisper import build_scripted_whisper
from tests.support.speech import speak
from zapvoice.settings import STTSettings


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


def test_short_window_spans_the_utterance_plus_padding_with_a_minimum():
    stt = STTSettings(short_window_min_s=8.0, short_window_pad_s=1.0)
    assert short_window_frames(3.0, stt) == 800  # the minimum
    assert short_window_frames(9.515, stt) == 1052  # 10.515 s, rounded up to an even frame count
    assert short_window_frames(29.0, stt) is None  # no shorter than the padded window
    assert short_window_frames(3.0, STTSettings(short_window_min_s=2.0, short_window_pad_s=0.5)) == 350


def segment(tokens=5, no_speech_prob=0.01):
    return SimpleNamespace(tokens=list(range(tokens)), no_speech_prob=no_speech_prob)


@pytest.mark.parametrize(("text", "segments", "language_probability", "reason"), [
    ("Seven of clubs.", [segment()], 0.99, None),
    ("", [], 0.99, "nothing decoded"),
    ("Seven of clubs Seven of clubs Seven of clubs Seven of clubs", [segment()], 0.99, "a loop"),
    ("ha" * 30, [segment()], 0.99, "a loop"),
    ("Seven of clubs.", [segment(tokens=29)], 0.99, None),
    ("Seven of clubs.", [segment(tokens=30)], 0.99, "the token cap reached"),
    ("Seven of clubs.", [segment(no_speech_prob=0.7)], 0.99, "a likely no-speech"),
    ("Seven of clubs.", [segment()], 0.3, "an unsure language detection"),
])
def test_a_degenerate_short_window_decode_is_recognised(text, segments, language_probability, reason):
    assert degenerate(text, segments, language_probability, seconds=1.5, cap=30) == reason


def engine(model_dir, **stt):
    return WhisperSTT(model_dir, STTSettings(whisper_model=str(model_dir), speech_check="off", **stt))


@pytest.mark.parametrize("language", [None, "pt"])
def test_the_short_window_encodes_only_the_utterance_once(model_files, encoder_passes, language):
    stt = engine(model_files["whisper"], short_window_min_s=4.0, short_window_pad_s=1.0)
    text, detected = stt._decode(speak("Olá, tudo bem com você?")[: 5 * 16000], language)
    stt.close()
    assert (text, detected) == (SCRIPTED_TEXT, "pt")
    assert [shape[-1] for shape in encoder_passes] in ([600], [400])  # speech of 3-5 s, + 1 s, at least 4 s


def test_off_switch_encodes_the_padded_window(model_files, encoder_passes):
    stt = engine(model_files["whisper"], short_window=False)
    assert stt._decode(speak("Bom dia"), None) == (SCRIPTED_TEXT, "pt")
    stt.close()
    assert [shape[-1] for shape in encoder_passes] == [3000]


def test_a_looping_short_window_decode_is_redone_on_the_padded_window(tmp_path, encoder_passes):
    looped = "sete de paus sete de paus sete de paus sete de paus"
    stt = engine(build_scripted_whisper(tmp_path / "looping", text=looped, language="pt"))
    text, _ = stt._decode(speak("Sete de paus"), "pt")
    stt.close()
    assert [shape[-1] for shape in encoder_passes] == [800, 3000]
    assert text == "sete de paus"  # the padded decode loops too here, and the loop guard cuts it


class EncoderBatches:
    """Stands in for CTranslate2's Whisper (a C++ object), recording the batch size of each encoder pass."""

    def __init__(self, inner):
        self.inner, self.sizes = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, features, **kwargs):
        self.sizes.append(features.shape[0])
        return self.inner.encode(features, **kwargs)


def test_utterances_transcribed_together_share_one_encoder_pass(model_files):
    stt = engine(model_files["whisper"])
    stt.model.model = recorder = EncoderBatches(stt.model.model)
    speech = [speak(text) for text in ("Olá, tudo bem?", "Bom dia", "Quero marcar um horário")]

    def unreadable():
        raise ProviderError(422, "unreadable audio")

    requests = [(lambda s=s: s, language) for s, language in zip(speech, ["pt", None, "en"])]
    results = stt._transcribe_batch([*requests[:2], (unreadable, None), requests[2]])
    stt.close()
    assert recorder.sizes == [3]
    assert [(r.text, r.language) for r in results if not isinstance(r, BaseException)] == [
        (SCRIPTED_TEXT, "pt"), (SCRIPTED_TEXT, "pt"), (SCRIPTED_TEXT, "en")]
    assert isinstance(results[2], ProviderError) and results[2].status == 422


def test_a_degenerate_decode_in_a_batch_is_redone_alone_on_the_padded_window(tmp_path, encoder_passes):
    looped = "sete de paus sete de paus sete de paus sete de paus"
    stt = engine(build_scripted_whisper(tmp_path / "looping", text=looped, language="pt"))
    results = stt._transcribe_batch([(lambda: speak("Sete de paus"), "pt"), (lambda: speak("Bom dia"), "pt")])
    stt.close()
    assert [shape[-1] for shape in encoder_passes] == [3000, 3000]  # the batch's pass is CTranslate2's own
    assert [r.text for r in results] == ["sete de paus", "sete de paus"]
