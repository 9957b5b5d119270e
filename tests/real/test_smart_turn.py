"""Smart Turn v3.2 (providers/smart_turn.py) on real recordings: our log-mel is the one pipecat feeds
the model, and the model tells a finished real sentence from the same sentence cut mid-way."""

from __future__ import annotations

import asyncio
import importlib.util

import numpy as np
import pytest
import soundfile
from zapvoice.providers.model_store import ModelError
from zapvoice.providers.smart_turn import SmartTurn

from tests.support.settings import build_settings
from zapvoice.composition import load_turn_model
from zapvoice.settings import TurnSettings

# Two LibriVox sentences that end where the reader finished a sentence (the other three end at a comma).
COMPLETE = ("sense_and_sensibility_01_austen_64kb-0890", "sense_and_sensibility_01_austen_64kb-0920")


@pytest.fixture(scope="module")
def model(real):
    turn = SmartTurn(real["smart_turn"])
    yield turn
    turn.close()


def clip(real, name: str) -> np.ndarray:
    (path,) = [c.audio for c in real["clips"] if c.name == name]
    samples, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    return samples


def test_features_match_pipecats_reference(real, model):
    """pipecat's own numpy port of the Whisper feature extractor (imported from its file: the wheel
    is installed without pipecat's dependencies), on a real sentence shorter than the 8 s window."""
    reference_file = real["smart_turn"].parent.parent / "_whisper_features.py"
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features", reference_file)
    assert spec is not None and spec.loader is not None
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    audio = clip(real, COMPLETE[0])
    front_padded = np.pad(audio, (128000 - audio.size, 0))
    ours = model.features(audio)
    assert ours.shape == (80, 800) and ours.dtype == np.float32
    assert np.abs(ours - reference.compute_whisper_log_mel_features(front_padded)).max() < 1e-4


@pytest.mark.parametrize("name", COMPLETE)
def test_a_finished_real_sentence_scores_high_and_the_same_sentence_cut_scores_low(real, model, name):
    audio = clip(real, name)
    threshold = TurnSettings().smart_turn_threshold
    assert model.probability(audio) > 0.9 > threshold
    # Cut at 55 % and followed by 200 ms of silence, as the VAD's pause hands it over.
    cut = np.concatenate([audio[: int(audio.size * 0.55)], np.zeros(3200, np.float32)])
    assert model.probability(cut) < 0.3 < threshold


def test_the_agent_loads_the_model_from_its_setting_and_judges_off_the_loop(real):
    """composition.load_turn_model, as agent_engines calls it in smart-turn mode, then the async entry
    point the conversation awaits (the worker pool)."""
    settings = build_settings(end_of_turn="smart-turn", smart_turn_model=str(real["smart_turn"]))
    model = load_turn_model(settings)
    try:
        probability = asyncio.run(model.complete(clip(real, COMPLETE[1])))
    finally:
        model.close()
    assert probability > 0.9
    missing = build_settings(end_of_turn="smart-turn", smart_turn_model=str(real["smart_turn"]) + ".gone.onnx")
    with pytest.raises(ModelError, match="end-of-turn model .*gone.onnx does not exist"):
        load_turn_model(missing)
