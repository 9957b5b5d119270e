"""Fixtures of the real-model tier: trained Whisper and Piper models, real recordings, and the service on them.

Every test here is marked `real`. Without the test-only packages (tests/real-models.txt) or
pocketsphinx-testdata the tier skips with the command that installs them (fails instead when
ZAPVOICE_REAL_REQUIRED is set, as .ci/run does).
"""

from __future__ import annotations

import os

import pytest

from tests.support import real_models
from zapvoice.composition import load_voices, load_whisper


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/real/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.real)


@pytest.fixture(scope="session")
def real():
    """Paths of the real models and the English clips; skips the test when they are not installed."""
    try:
        return {
            "whisper_base": real_models.whisper_base_dir(),
            "whisper_tiny_en": real_models.whisper_tiny_en_dir(),
            "joe_voice": real_models.joe_voice(),
            "smart_turn": real_models.smart_turn_model(),
            "clips": real_models.english_clips(),
        }
    except real_models.RealModelsMissing as missing:
        if os.environ.get("ZAPVOICE_REAL_REQUIRED"):
            pytest.fail(f"real models absent and ZAPVOICE_REAL_REQUIRED is set: {missing}")
        pytest.skip(f"real models absent: {missing}")


@pytest.fixture(scope="session")
def real_settings(make_settings, real, model_files):
    """Settings on real Whisper base and two voices: a Portuguese test voice (the default) and the real
    English voice, so what the caller hears in English was chosen by the language Whisper detected."""
    def make(**overrides):
        values = dict(whisper_model=str(real["whisper_base"]),
                      voices=[str(model_files["pt_voice"]), str(real["joe_voice"])])
        values.update(overrides)
        return make_settings(**values)
    return make


@pytest.fixture(scope="session")
def real_engines(real_settings):
    """Real Whisper base and the voices, loaded once for the tier's in-process uses."""
    settings = real_settings()
    stt, tts = load_whisper(settings), load_voices(settings)
    yield stt, tts
    stt.close()
    tts.close()


@pytest.fixture(scope="session")
def real_service(make_service, real_settings, real):
    return make_service(whisper_model=str(real["whisper_base"]),
                        voices=real_settings().tts.voices)
