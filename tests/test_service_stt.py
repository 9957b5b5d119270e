"""POST /stt over a real socket, with a Whisper model loaded through faster-whisper."""

import asyncio
import io
import threading
import time
from collections import Counter

import numpy as np
import pytest
import soundfile

from tests.conftest import SCRIPTED_TEXT
from tests.support.speech import noise, speak
from zapvoice.audio import to_int16, wav_bytes

RATE = 16000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speak("Olá, eu gostaria de marcar uma consulta para amanhã.")


def wav_at(samples: np.ndarray, rate: int, channels: int = 1, subtype: str = "PCM_16") -> bytes:
    import soxr
    resampled = soxr.resample(samples, RATE, rate)
    data = np.repeat(resampled[:, None], channels, axis=1) if channels > 1 else resampled
    buffer = io.BytesIO()
    soundfile.write(buffer, data, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def test_wav_as_zuckzapgo_sends_it(client, speech):
    answer = client.post("/stt", content=wav_bytes(speech, RATE), headers={"Content-Type": "audio/wav"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["text"] == SCRIPTED_TEXT
    assert body["language"] == "pt" and body["speech"] is True
    assert body["duration_s"] == pytest.approx(speech.size / RATE, abs=0.01)
    assert body["processing_ms"] > 0


@pytest.mark.parametrize(("rate", "channels", "subtype"), [(8000, 1, "PCM_16"), (44100, 2, "FLOAT"), (48000, 2, "PCM_24")])
def test_any_wav_format(client, speech, rate, channels, subtype):
    answer = client.post("/stt", content=wav_at(speech, rate, channels, subtype), headers={"Content-Type": "audio/wav"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == SCRIPTED_TEXT


def test_multipart_file_like_curl_F(client, speech):
    answer = client.post("/stt", files={"file": ("hello.wav", wav_bytes(speech, RATE), "audio/wav")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == SCRIPTED_TEXT


def test_raw_pcm(client, speech):
    answer = client.post("/stt", content=to_int16(speech).tobytes(), headers={"Content-Type": "audio/L16"})
    assert answer.json()["text"] == SCRIPTED_TEXT


def test_language_override(client, speech):
    answer = client.post("/stt?language=en-US", content=wav_bytes(speech, RATE), headers={"Content-Type": "audio/wav"})
    assert answer.status_code == 200
    assert answer.json()["language"] == "en"


def test_unknown_language_is_422(client, speech):
    answer = client.post("/stt?language=klingon", content=wav_bytes(speech, RATE), headers={"Content-Type": "audio/wav"})
    assert answer.status_code == 422
    assert "klingon" in answer.json()["error"]


@pytest.mark.parametrize("audio", [
    np.zeros(3 * RATE, np.float32),                      # digital silence
    noise(3.0, dbfs=-65),                                # a quiet line
    noise(3.0, dbfs=-20),                                # loud hiss: passes the level gate, not Silero
    (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * RATE) / RATE)).astype(np.float32),  # a tone
], ids=["zeros", "quiet-noise", "loud-noise", "tone"])
def test_no_speech_is_empty_text_without_whisper(client, audio):
    answer = client.post("/stt", content=wav_bytes(audio, RATE), headers={"Content-Type": "audio/wav"})
    assert answer.status_code == 200
    assert answer.json()["text"] == "" and answer.json()["speech"] is False


def test_speech_inside_noise_is_found(client, speech):
    padded = np.concatenate([noise(1.0, -55, seed=1), speech + noise(speech.size / RATE, -55, seed=2), noise(1.5, -55)])
    answer = client.post("/stt", content=wav_bytes(padded, RATE), headers={"Content-Type": "audio/wav"})
    assert answer.json()["text"] == SCRIPTED_TEXT


@pytest.mark.parametrize(("content", "content_type", "status", "says"), [
    (b"", "audio/wav", 422, "empty"),
    (b"just text", "text/plain", 415, "unsupported content type"),
    (b"\x00\x01" * 500, "audio/wav", 422, "cannot read"),
    (b"\x00\x01\x02", "application/octet-stream", 422, "2-byte frames"),
])
def test_bad_audio(client, content, content_type, status, says):
    answer = client.post("/stt", content=content, headers={"Content-Type": content_type})
    assert answer.status_code == status
    assert says in answer.json()["error"]


def test_multipart_without_file_field(client):
    answer = client.post("/stt", files={"audio": ("a.wav", b"RIFF", "audio/wav")})
    assert answer.status_code == 422 and "'file'" in answer.json()["error"]


def test_malformed_multipart_is_a_json_400(client):
    answer = client.post("/stt", content=b"abc", headers={"Content-Type": "multipart/form-data"})
    assert answer.status_code == 400 and "boundary" in answer.json()["error"]


def test_audio_longer_than_the_limit_is_413(client, service):
    too_long = np.zeros(int((service.settings.stt.max_audio_s + 1) * 8000), np.float32)
    answer = client.post("/stt", content=wav_bytes(too_long, 8000), headers={"Content-Type": "audio/wav"})
    assert answer.status_code == 413 and "limit" in answer.json()["error"]


def silent_file(rate: int, channels: int, seconds: float, format: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((int(rate * seconds), channels), np.float32), rate, format=format, subtype=subtype)
    return buffer.getvalue()


def test_decompression_bomb_is_413_from_its_header(client, service):
    bomb = silent_file(655350, 8, 3.0, "FLAC", "PCM_16")  # a few KB that decode to 63 MB of float32
    answer = client.post("/stt", content=bomb, headers={"Content-Type": "audio/flac"})
    assert answer.status_code == 413
    limit = f"{service.settings.stt.max_decoded_samples:,}"
    assert answer.json() == {"error": f"audio decodes to 15,728,400 samples (8 channels × 655350 Hz × 3.0 s); "
                                      f"the limit is {limit}"}


def test_too_many_channels_is_422(client):
    many_channels = silent_file(8000, 255, 0.1, "OGG", "VORBIS")
    answer = client.post("/stt", content=many_channels, headers={"Content-Type": "audio/ogg"})
    assert answer.status_code == 422
    assert answer.json() == {"error": "audio has 255 channels; the limit is 8"}


def counted(function, calls: Counter):
    def call(*args, **kwargs):
        calls[function.__name__] += 1
        return function(*args, **kwargs)
    return call


def test_busy_engine_refuses_with_503_before_decoding(make_service, speech, monkeypatch):
    import httpx
    from zapvoice.providers import service, stt

    from tests.conftest import TOKEN

    calls = Counter()
    for module, name in ((service, "decode_audio"), (stt, "check_speech")):
        monkeypatch.setattr(module, name, counted(getattr(module, name), calls))
    running = make_service(stt_concurrency=1, stt_queue=0)
    release = threading.Event()
    engines_worker = running.app.state.engines.stt.worker
    holder = threading.Thread(target=lambda: asyncio.run(engines_worker.run(release.wait)))
    holder.start()
    post = lambda audio: httpx.post(f"{running.url}/stt", content=wav_bytes(audio, RATE),  # noqa: E731
                                    headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {TOKEN}"})
    try:
        while engines_worker.in_flight == 0:
            time.sleep(0.005)
        for audio in (speech, np.zeros(RATE, np.float32)):
            answer = post(audio)
            assert answer.status_code == 503
            assert answer.headers["Retry-After"] == "1", "nothing queued: the slot frees within a job"
            assert "busy" in answer.json()["error"]
        assert calls == Counter(), "a refused request is neither decoded nor checked for speech"
    finally:
        release.set()
        holder.join()
    assert post(speech).status_code == 200
    assert calls == Counter(decode_audio=1, check_speech=1)
