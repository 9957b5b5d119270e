"""The loop guard: greedy decodes that repeat themselves are cut where the repetition starts,
and ordinary speech, repeated words included, is left alone.

The loops below are what real Whisper base wrote for real recordings when its encoder saw only
the clip (no 30 s padding), the failure the guard exists for.
"""

import httpx
import pytest
from zapvoice.providers.decoding_loops import compression_ratio, cut_loop

from tests.conftest import TOKEN
from tests.model_builders.whisper import build_scripted_whisper
from tests.support.speech import speak
from zapvoice.audio import PIPELINE_RATE, wav_bytes

REAL_LOOPS = [  # (decoded text, seconds of audio, what the guard keeps)
    ("10 of clubs 10 of clubs 10 of clubs 10 of clubs 10 of clubs 10 of clubs 10 of clubs 10 of clubs", 1.1,
     "10 of clubs"),
    (" ".join(["seven"] * 40), 1.5, "seven"),
    (" ".join(["5"] * 60), 1.6, "5"),
    ("He was not an ill-sposed young man. He was not an ill-sposed young man. He was not an ill-sposed young man. "
     "He was not an ill-sp", 3.0, "He was not an ill-sposed young man."),
    ("8 of spades, 4 of close, 7 of hearts, 8 of spades, 7 of hearts, 8 of spades, 4 of close, 7 of hearts, "
     "8 of spades,", 3.5, "8 of spades, 4 of close, 7 of hearts"),
    ("ไม่มั้ง" + "วัง" * 30 + "สังพา", 2.0, "ไม่มั้งวั"),  # a script without spaces
]
NOT_LOOPS = [
    ("five five five five", 2.5),  # said by the caller: slow enough for the audio
    ("não, não, não, eu disse terça-feira, não quarta", 3.0),
    ("Had he married a more amiable woman he might have been made still more respectable than he was.", 6.0),
    ("Unless to be rather cold-hearted and rather selfish is to be ill-disposed.", 5.3),
    ("", 1.0),
]


@pytest.mark.parametrize("text, seconds, kept", REAL_LOOPS)
def test_a_real_loop_is_cut_where_it_started(text, seconds, kept):
    assert cut_loop(text, seconds) == kept


@pytest.mark.parametrize("text, seconds", NOT_LOOPS)
def test_ordinary_speech_is_left_alone(text, seconds):
    assert cut_loop(text, seconds) is None


def test_a_long_loop_compresses_like_one():
    assert compression_ratio(REAL_LOOPS[0][0]) > 2.4 > compression_ratio(NOT_LOOPS[2][0])


def test_stt_answers_the_first_occurrence_of_a_looping_decode(make_service, tmp_path):
    """Through /stt, on a Whisper scripted to loop as greedy decoding does."""
    looping = build_scripted_whisper(tmp_path / "looping", text=" ".join(["dez de paus"] * 12), language="pt")
    service = make_service(whisper_model=str(looping))
    audio = speak("Dez de paus.")
    answer = httpx.post(f"{service.url}/stt", content=wav_bytes(audio, PIPELINE_RATE),
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "audio/wav"}, timeout=30).json()
    assert answer["text"] == "dez de paus"
