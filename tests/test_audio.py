"""Decoding what users upload: every WAV flavour, FLAC/OGG, raw PCM, and clear errors for the rest."""

import io

import numpy as np
import pytest
import soundfile

from zapvoice.audio import AudioError, decode_audio, peak_window_dbfs, wav_bytes

RATE = 16000


def tone(seconds: float, rate: int, channels: int = 1, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.5 * np.sin(2 * np.pi * hz * t)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def encoded(samples: np.ndarray, rate: int, format: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=format, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(("rate", "channels", "subtype"), [
    (16000, 1, "PCM_16"), (8000, 1, "PCM_16"), (44100, 2, "PCM_24"), (48000, 2, "FLOAT"),
    (22050, 1, "PCM_U8"), (11025, 1, "ULAW"), (32000, 2, "PCM_32"),
])
def test_any_wav_becomes_16k_mono(rate, channels, subtype):
    samples, duration = decode_audio(encoded(tone(1.5, rate, channels), rate, subtype=subtype), "audio/wav", 60)
    assert duration == pytest.approx(1.5, abs=1e-3)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size == pytest.approx(1.5 * RATE, abs=2)
    assert 0.3 < np.abs(samples).max() < 0.6


@pytest.mark.parametrize(("format", "subtype"), [("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_flac_and_ogg(format, subtype):
    samples, duration = decode_audio(encoded(tone(1.0, 44100), 44100, format, subtype), "audio/ogg", 60)
    assert duration == pytest.approx(1.0, abs=0.01)
    assert samples.size == pytest.approx(RATE, abs=20)


def test_container_is_sniffed_whatever_the_content_type():
    body = encoded(tone(0.5, 8000), 8000)
    samples, _ = decode_audio(body, "application/x-www-form-urlencoded", 60)
    assert samples.size == RATE // 2


def test_raw_pcm_defaults_to_16k_mono_and_honours_rate_parameter():
    pcm = (tone(1.0, 8000) * 32767).astype("<i2").tobytes()
    samples, duration = decode_audio(pcm, "audio/L16; rate=8000", 60)
    assert duration == pytest.approx(1.0) and samples.size == RATE
    _, duration16 = decode_audio(pcm, "application/octet-stream", 60)
    assert duration16 == pytest.approx(0.5)


def test_raw_pcm_odd_length_is_422():
    with pytest.raises(AudioError) as caught:
        decode_audio(b"\x00\x01\x02", "application/octet-stream", 60)
    assert caught.value.status == 422 and "2-byte frames" in str(caught.value)


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"", "audio/wav", 422),
    (b"hello there", "text/plain", 415),
    (b'{"text": 1}', "application/json", 415),
    (b"not a wav file at all" * 10, "audio/wav", 422),
    (b"RIFF\x24\x00\x00\x00WAVEfmt garbage", "audio/wav", 422),
])
def test_bad_bodies(body, content_type, status):
    with pytest.raises(AudioError) as caught:
        decode_audio(body, content_type, 60)
    assert caught.value.status == status


def test_too_long_is_413_from_the_header():
    with pytest.raises(AudioError) as caught:
        decode_audio(encoded(tone(3.0, 8000), 8000), "audio/wav", max_seconds=2.0)
    assert caught.value.status == 413 and "2 s" in str(caught.value)


def test_non_finite_samples_are_made_safe():
    data = tone(0.5, RATE).astype(np.float32)
    data[100:200] = np.nan
    data[300] = np.inf
    samples, _ = decode_audio(encoded(data, RATE, subtype="FLOAT"), "audio/wav", 60)
    assert np.isfinite(samples).all()


def test_wav_of_int16_samples_is_not_rescaled():
    pcm = np.array([0, 1000, -1000, 32767, -32768], np.int16)
    decoded, _ = soundfile.read(io.BytesIO(wav_bytes(pcm, RATE)), dtype="int16")
    assert np.array_equal(decoded, pcm)


def test_wav_round_trip_and_levels():
    samples, _ = decode_audio(wav_bytes(tone(1.0, RATE), RATE), "audio/wav", 60)
    assert peak_window_dbfs(samples) == pytest.approx(-9.0, abs=0.2)  # 0.5 amplitude sine: -6 dB peak, -9 dB RMS
    assert peak_window_dbfs(np.zeros(RATE, np.float32)) < -150
    assert peak_window_dbfs(np.zeros(0, np.float32)) < -150


@pytest.fixture()
def reads(monkeypatch) -> list[int]:
    """Samples (frames × channels) each SoundFile.read asked for; -1 for "the whole file"."""
    asked: list[int] = []
    original = soundfile.SoundFile.read

    def read(sound, frames=-1, *args, **kwargs):
        asked.append(-1 if frames < 0 else frames * sound.channels)
        return original(sound, frames, *args, **kwargs)

    monkeypatch.setattr(soundfile.SoundFile, "read", read)
    return asked


def test_decoded_size_over_the_limit_is_413_before_any_decoding(reads):
    bomb = encoded(np.zeros((96000, 8), np.float32), 96000, "FLAC", "PCM_16")  # 1 s: 768,000 samples, 3 KB
    with pytest.raises(AudioError) as caught:
        decode_audio(bomb, "audio/flac", 60, max_samples=500_000)
    assert caught.value.status == 413
    assert "768,000 samples (8 channels × 96000 Hz × 1.0 s); the limit is 500,000" in str(caught.value)
    assert reads == []


def test_more_channels_than_the_limit_is_422_before_any_decoding(reads):
    body = encoded(np.zeros((800, 9), np.float32), 8000, "OGG", "VORBIS")
    with pytest.raises(AudioError) as caught:
        decode_audio(body, "audio/ogg", 60)
    assert caught.value.status == 422 and "9 channels; the limit is 8" in str(caught.value)
    assert reads == []
    with pytest.raises(AudioError, match="2 channels; the limit is 1"):
        decode_audio(b"\x00" * 400, "audio/L16; channels=2", 60, max_channels=1)


@pytest.mark.parametrize("channels", [1, 2, 8])
def test_decoding_holds_a_bounded_block_at_a_time(reads, channels):
    body = encoded(tone(3.0, 48000, channels), 48000, "FLAC", "PCM_24")
    samples, duration = decode_audio(body, "audio/flac", 60)
    assert duration == pytest.approx(3.0) and samples.size == 3 * RATE
    assert 0.3 < np.abs(samples).max() < 0.6
    assert len(reads) > 1 and max(reads) <= 1 << 16, "never the whole file at once"


def test_a_wav_sent_with_curl_data_gets_the_data_binary_hint():
    """curl --data @file.wav drops every CR and LF byte and labels the body as a form."""
    whole = encoded(tone(1.0, RATE), RATE)
    stripped = whole.replace(b"\n", b"").replace(b"\r", b"")
    assert len(stripped) < len(whole)
    for body in (stripped, b"not audio at all"):
        with pytest.raises(AudioError) as caught:
            decode_audio(body, "application/x-www-form-urlencoded", 60)
        assert caught.value.status == 422 and "--data-binary" in str(caught.value)
    with pytest.raises(AudioError) as caught:
        decode_audio(b"not audio at all", "audio/wav", 60)
    assert "--data-binary" not in str(caught.value)


@pytest.mark.parametrize(("body", "content_type"), [
    (b"not audio at all", "audio/wav"), (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(30), "audio/wav"),
    (b"\x00\x00\x00\x18ftypM4A " + bytes(40), "audio/mp4"), (b"fLaC" + bytes(40), None),
])
def test_unreadable_audio_names_no_python_object(body, content_type):
    with pytest.raises(AudioError) as caught:
        decode_audio(body, content_type, 60)
    message = str(caught.value)
    assert message.startswith("cannot read the audio: ") and " at 0x" not in message and "<" not in message
