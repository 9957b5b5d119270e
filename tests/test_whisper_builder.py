"""The built Whisper models must behave like real ones under faster-whisper's own loader."""

import time
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel

from tests.model_builders.whisper import (
    SCRIPTED_SEGMENT_END,
    build_random_whisper,
    build_scripted_whisper,
    forced_length_options,
)

TEXT = "olá, tudo bem?"


def _load(path: Path) -> WhisperModel:
    return WhisperModel(str(path), device="cpu", compute_type="int8")


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> WhisperModel:
    return _load(build_scripted_whisper(tmp_path_factory.mktemp("scripted"), text=TEXT, language="pt"))


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """2 s of noise at 16 kHz: the scripted model must not care what it hears."""
    return np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)


def _transcribe(model: WhisperModel, audio: np.ndarray, **options) -> tuple[str, str, list]:
    segments, info = model.transcribe(audio, **options)
    segments = list(segments)
    return "".join(segment.text for segment in segments), info.language, segments


def test_build_is_fast_and_writes_a_complete_model_folder(tmp_path: Path) -> None:
    start = time.perf_counter()
    path = build_scripted_whisper(tmp_path / "model")
    assert time.perf_counter() - start < 2.0
    assert path == tmp_path / "model"
    assert {"model.bin", "vocabulary.json", "config.json", "tokenizer.json"} <= {p.name for p in path.iterdir()}


@pytest.mark.parametrize(
    "options",
    [
        dict(beam_size=1, temperature=0, without_timestamps=True),
        dict(beam_size=5, without_timestamps=False),
        dict(beam_size=5, word_timestamps=True),
    ],
    ids=["greedy-no-timestamps", "beam5-timestamps", "word-timestamps"],
)
def test_transcribes_the_scripted_text(scripted: WhisperModel, noise: np.ndarray, options: dict) -> None:
    text, language, segments = _transcribe(scripted, noise, language="pt", **options)
    assert text == TEXT
    assert language == "pt"
    assert [(s.start, s.end) for s in segments] == [(0.0, SCRIPTED_SEGMENT_END)]


def test_auto_detects_the_scripted_language(scripted: WhisperModel, noise: np.ndarray) -> None:
    text, language, _ = _transcribe(scripted, noise, language=None)
    assert (text, language) == (TEXT, "pt")
    detected, probability, _ = scripted.detect_language(noise)
    assert detected == "pt" and probability > 0.9


def test_forced_language_still_gives_the_scripted_text(scripted: WhisperModel, noise: np.ndarray) -> None:
    assert _transcribe(scripted, noise, language="en")[:2] == (TEXT, "en")


def test_text_and_language_are_per_build(tmp_path: Path, noise: np.ndarray) -> None:
    model = _load(build_scripted_whisper(tmp_path, text="¿Qué tal, João?", language="es"))
    assert _transcribe(model, noise)[:2] == ("¿Qué tal, João?", "es")


def test_random_tiny_has_the_real_shape_and_decodes_the_forced_length(tmp_path: Path, noise: np.ndarray) -> None:
    model = _load(build_random_whisper(tmp_path, size="tiny"))
    assert model.model.is_multilingual
    _, language, segments = _transcribe(model, noise, language="pt", **forced_length_options(3))
    assert language == "pt"
    assert [len(segment.tokens) for segment in segments] == [3]
