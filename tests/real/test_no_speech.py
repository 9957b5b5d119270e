"""No speech, no text: behind the speech gate, real Whisper is not even run on what a phone line
carries between words (silence, hiss, hum, clicks, line noise), and a quiet caller is still heard.

(Whisper base's own no-speech test also leaves these 3 s signals empty; the gate saves the
0.5 s decode and covers the cases where Whisper writes "Obrigado." or "Thank you.")"""

from __future__ import annotations

import numpy as np
import pytest

from zapvoice.audio import PIPELINE_RATE, wav_bytes
from zapvoice.evaluation import read_clip
from zapvoice.word_errors import word_errors

SECONDS = 3.0
_t = np.arange(int(SECONDS * PIPELINE_RATE)) / PIPELINE_RATE


def at_level(signal: np.ndarray, dbfs: float) -> np.ndarray:
    """`signal` scaled to an RMS of `dbfs`."""
    return (signal * 10 ** (dbfs / 20) / np.sqrt(np.mean(signal ** 2))).astype(np.float32)


def hiss(seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, _t.size)


def hum(mains_hz: float) -> np.ndarray:
    """Mains hum with its odd harmonics, as a badly earthed line carries it."""
    return sum(np.sin(2 * np.pi * mains_hz * k * _t) / k for k in (1, 3, 5, 7))


def clicks() -> np.ndarray:
    """A click every 0.4 s (a relay, a loose connector), over near silence."""
    signal = np.random.default_rng(2).normal(0, 1e-4, _t.size)
    for start in range(800, _t.size, int(0.4 * PIPELINE_RATE)):
        signal[start:start + 40] += np.hanning(40) * np.sign(np.sin(start))
    return signal


def line_noise() -> np.ndarray:
    """Pink noise in the telephone band (300-3400 Hz), the hiss of a telephone channel."""
    spectrum = np.fft.rfft(np.random.default_rng(3).normal(0, 1, _t.size))
    hz = np.fft.rfftfreq(_t.size, 1 / PIPELINE_RATE)
    in_band = (hz >= 300) & (hz <= 3400)
    spectrum[~in_band] = 0
    spectrum[in_band] /= np.sqrt(hz[in_band])
    return np.fft.irfft(spectrum, _t.size)


NO_SPEECH = {
    "digital silence": lambda: np.zeros(_t.size, np.float32),
    "hiss -60 dBFS": lambda: at_level(hiss(), -60),
    "hiss -45 dBFS": lambda: at_level(hiss(), -45),
    "hiss -30 dBFS": lambda: at_level(hiss(), -30),
    "hum 50 Hz -40 dBFS": lambda: at_level(hum(50), -40),
    "hum 60 Hz -25 dBFS": lambda: at_level(hum(60), -25),
    "clicks -6 dBFS peak": lambda: (clicks() * 0.5).astype(np.float32),
    "line noise -50 dBFS": lambda: at_level(line_noise(), -50),
    "line noise -35 dBFS": lambda: at_level(line_noise(), -35),
}


def post_stt(client, samples: np.ndarray) -> dict:
    response = client.post("/stt?language=en", content=wav_bytes(samples, PIPELINE_RATE),
                           headers={"Content-Type": "audio/wav"})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture()
def real_client(real_service):
    import httpx

    from tests.conftest import TOKEN
    with httpx.Client(base_url=real_service.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        yield http


@pytest.mark.parametrize("name", NO_SPEECH)
def test_no_speech_gives_no_text(real_client, name):
    answer = post_stt(real_client, NO_SPEECH[name]())
    assert answer["text"] == "" and answer["speech"] is False, f"{name}: {answer}"  # Whisper was not run


@pytest.mark.parametrize("dbfs", [-35.0, -45.0])
def test_a_quiet_caller_is_still_heard(real_client, real, dbfs):
    clip = real["clips"][0]
    quiet = at_level(read_clip(clip), dbfs)
    answer = post_stt(real_client, quiet)
    assert answer["speech"] is True
    assert word_errors(clip.text, answer["text"]).rate <= 0.15, answer


def test_a_caller_over_line_noise_is_heard(real_client, real):
    clip = real["clips"][1]
    speech = read_clip(clip)
    noisy = speech + at_level(line_noise(), -45)[: speech.size]
    answer = post_stt(real_client, noisy.astype(np.float32))
    assert word_errors(clip.text, answer["text"]).rate <= 0.15, answer
