"""POST /tts with Piper voices loaded through piper-tts: formats, voices, speed, cache, limits."""

import io

import httpx
import numpy as np
import pytest
import soundfile

GREETING = "Olá! Você ligou para a Clínica Sorriso. Como posso ajudar?"


def wav_of(answer: httpx.Response) -> tuple[np.ndarray, int]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "audio/wav"
    info = soundfile.info(io.BytesIO(answer.content))
    assert (info.channels, info.subtype) == (1, "PCM_16")
    samples, rate = soundfile.read(io.BytesIO(answer.content), dtype="int16")
    return samples, rate


def test_wav_at_16k_for_zuckzapgo(client):
    samples, rate = wav_of(client.post("/tts", json={"text": GREETING}, headers={"Accept": "audio/wav"}))
    assert rate == 16000
    assert 1.0 < samples.size / rate < 15
    assert 1000 < np.abs(samples).max() < 32767, "audible and not clipped"


def test_no_accept_header_means_wav(client):
    answer = client.post("/tts", json={"text": GREETING}, headers={"Accept": ""})
    assert answer.content[:4] == b"RIFF"


@pytest.mark.parametrize("accept", ["audio/L16", "application/octet-stream", "audio/pcm;q=1, audio/wav;q=0.5"])
def test_raw_pcm_when_asked(client, accept):
    wav, _ = wav_of(client.post("/tts", json={"text": GREETING}, headers={"Accept": "audio/wav"}))
    answer = client.post("/tts", json={"text": GREETING}, headers={"Accept": accept})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("audio/L16;rate=16000")
    assert answer.content[:4] != b"RIFF" and len(answer.content) % 2 == 0
    assert np.array_equal(np.frombuffer(answer.content, "<i2"), wav)


def test_unacceptable_accept_is_406(client):
    answer = client.post("/tts", json={"text": GREETING}, headers={"Accept": "application/json"})
    assert answer.status_code == 406 and "audio/wav" in answer.json()["error"]


def test_second_request_comes_from_the_cache(client):
    text = "Obrigado por ligar, até logo."
    first = client.post("/tts", json={"text": text})
    second = client.post("/tts", json={"text": text})
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("miss", "hit")
    assert first.content == second.content


@pytest.mark.parametrize("voice", ["en_US-test-medium", "en", "en-US", "en_US"])
def test_voice_by_name_or_language(client, voice):
    default, _ = wav_of(client.post("/tts", json={"text": "Hello there, how are you?"}))
    english, _ = wav_of(client.post("/tts", json={"text": "Hello there, how are you?", "voice": voice}))
    assert not np.array_equal(default, english), "the English voice phonemizes differently"


@pytest.mark.parametrize("voice", ["fr_FR-siwis-medium", "../../../etc/passwd", "/tmp/x.onnx", "pt_BR-test-medium.onnx"])
def test_unknown_voice_is_422_never_a_path(client, voice):
    answer = client.post("/tts", json={"text": "Oi", "voice": voice})
    assert answer.status_code == 422
    assert "loaded voices: pt_BR-test-medium, en_US-test-medium" in answer.json()["error"]


def test_speed(client):
    normal, _ = wav_of(client.post("/tts", json={"text": GREETING}))
    fast, _ = wav_of(client.post("/tts", json={"text": GREETING, "speed": 2.0}))
    assert fast.size == pytest.approx(normal.size / 2, rel=0.15)


@pytest.mark.parametrize(("body", "says"), [
    ({"text": ""}, "text"),
    ({"text": 5}, "text"),
    ({}, "text: Field required"),
    ({"text": "Oi", "speed": 9}, "speed"),
    ({"text": "Oi", "speed": "1.0"}, "speed: Input should be a valid number"),
    ({"text": "Oi", "speed": True}, "speed: Input should be a valid number"),
    ({"text": "😊🎉"}, "nothing a voice can say"),
    ({"text": "a" * 2001}, "the limit is 2000"),
])
def test_invalid_requests_are_422(client, body, says):
    answer = client.post("/tts", json=body)
    assert answer.status_code == 422
    assert says in answer.json()["error"]


@pytest.mark.parametrize(("text", "status"), [("Olá\u0000 mundo", 200), ("\u0000", 422), ("\x00\x07\x1b", 422)])
def test_control_characters_are_never_a_500(client, text, status):
    answer = client.post("/tts", json={"text": text})
    assert answer.status_code == status
    assert client.post("/tts", json={"text": "Tudo bem?"}).status_code == 200, "the connection stays usable"


def test_native_rate_when_configured(make_service):
    from tests.conftest import TOKEN
    running = make_service(tts_sample_rate=0)
    answer = httpx.post(f"{running.url}/tts", json={"text": "Oi"}, headers={"Authorization": f"Bearer {TOKEN}"})
    _, rate = wav_of(answer)
    assert rate == 22050
