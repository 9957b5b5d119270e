"""The sine test voice must behave like a real Piper voice under piper's own loader."""

import logging
import time
from pathlib import Path

import numpy as np
import pytest
from piper import PiperVoice, SynthesisConfig

from tests.model_builders.piper_voice import build_sine_voice

PT_TEXT = "Olá! Como posso ajudar você hoje?"
EN_TEXT = "Hello, how can I help you today?"


@pytest.fixture(scope="module")
def pt_voice(tmp_path_factory: pytest.TempPathFactory) -> PiperVoice:
    return PiperVoice.load(build_sine_voice(tmp_path_factory.mktemp("pt")))


@pytest.fixture(scope="module")
def en_voice(tmp_path_factory: pytest.TempPathFactory) -> PiperVoice:
    path = build_sine_voice(
        tmp_path_factory.mktemp("en"), name="en_US-test-medium", espeak_voice="en-us", sample_rate=16000
    )
    return PiperVoice.load(path)


def _audio(voice: PiperVoice, text: str, syn_config: SynthesisConfig | None = None) -> np.ndarray:
    return np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text, syn_config)])


def test_build_is_fast_and_writes_model_and_config(tmp_path: Path) -> None:
    start = time.perf_counter()
    path = build_sine_voice(tmp_path)
    assert time.perf_counter() - start < 1.0
    assert path == tmp_path / "pt_BR-test-medium.onnx"
    assert path.is_file()
    assert path.with_name("pt_BR-test-medium.onnx.json").is_file()


def test_config_matches_a_real_voice(pt_voice: PiperVoice) -> None:
    assert pt_voice.config.espeak_voice == "pt-br"
    assert pt_voice.config.num_speakers == 1
    assert [i.name for i in pt_voice.session.get_inputs()] == ["input", "input_lengths", "scales"]


@pytest.mark.parametrize(
    ("voice_fixture", "text", "sample_rate"),
    [("en_voice", EN_TEXT, 16000), ("pt_voice", "Como posso ajudar você hoje?", 22050)],
)
def test_sentence_gives_realistic_non_silent_audio(
    voice_fixture: str, text: str, sample_rate: int, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    voice: PiperVoice = request.getfixturevalue(voice_fixture)
    with caplog.at_level(logging.WARNING, logger="piper"):
        chunks = list(voice.synthesize(text))
    assert "Missing phoneme" not in caplog.text  # the id map covers what espeak produces
    assert len(chunks) == 1
    chunk = chunks[0]
    assert chunk.sample_rate == sample_rate
    seconds = len(chunk.audio_float_array) / sample_rate
    assert 0.06 <= seconds / len(chunk.phonemes) <= 0.09
    assert 1.0 <= seconds <= 3.0
    assert np.sqrt(np.mean(chunk.audio_float_array**2)) > 0.1


def test_same_input_gives_same_audio(pt_voice: PiperVoice) -> None:
    np.testing.assert_array_equal(_audio(pt_voice, PT_TEXT), _audio(pt_voice, PT_TEXT))


def test_one_chunk_per_sentence(pt_voice: PiperVoice) -> None:
    assert len(list(pt_voice.synthesize(PT_TEXT))) == 2


def test_length_scale_stretches_audio(pt_voice: PiperVoice) -> None:
    normal = len(_audio(pt_voice, PT_TEXT))
    slow = len(_audio(pt_voice, PT_TEXT, SynthesisConfig(length_scale=2.0)))
    assert slow / normal == pytest.approx(2.0, rel=0.05)
