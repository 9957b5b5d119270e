"""Audio in and out of zapvoice: decoding what users send, resampling, WAV encoding, levels.

Inside zapvoice audio is float32 mono in [-1, 1] at 16 kHz (`PIPELINE_RATE`), what Whisper
wants and what ZuckZapGo carries. Everything else is converted at the edge, here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr

PIPELINE_RATE = 16000
SILENCE_DBFS = -200.0  # the level reported for digital silence
MAX_CHANNELS = 8  # more is no recording of a call: surround at most
_BLOCK_SAMPLES = 1 << 16  # samples (frames × channels) decoded at a time: 256 KB of float32

# Content types whose body is headerless PCM (s16le; `rate=` and `channels=` parameters honoured).
RAW_PCM_TYPES = {"audio/l16", "audio/pcm", "audio/raw", "application/octet-stream"}
# Magic numbers of containers soundfile reads; a body starting with one is decoded as a file
# whatever its content type says (clients mislabel often: curl --data-binary sends form type).
_CONTAINER_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b"ID3", b".snd")


class AudioError(ValueError):
    """Audio a client sent that we cannot use; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class MediaType:
    """A parsed Content-Type: `audio/L16; rate=8000` -> ("audio/l16", {"rate": "8000"})."""

    mime: str
    params: dict[str, str]

    @classmethod
    def parse(cls, header: str | None) -> MediaType:
        parts = [p.strip() for p in (header or "").split(";")]
        params = {}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        return cls(parts[0].lower(), params)


def decode_audio(body: bytes, content_type: str | None, max_seconds: float, *, max_channels: int = MAX_CHANNELS,
                 max_samples: int | None = None) -> tuple[np.ndarray, float]:
    """Any supported upload -> (float32 mono 16 kHz samples, duration in seconds).

    Raises AudioError: 415 for a content type that is not audio, 413 for audio longer than
    `max_seconds` or decoding to more than `max_samples` samples (frames × channels), 422 for
    more than `max_channels` channels or audio we cannot read. The limits are checked from the
    header, before decoding: a small compressed file can hold an hour of 8-channel silence.
    """
    if not body:
        raise AudioError("the request body is empty: send the audio as the body (WAV, FLAC, OGG or raw s16le)")
    media = MediaType.parse(content_type)
    if media.mime != FORM_TYPE:
        return _decode(body, media, content_type, _Limits(max_seconds, max_channels, max_samples))
    if _lost_bytes(body):
        raise AudioError(f"the WAV header announces more bytes than arrived: {CURL_DATA_HINT}")
    try:
        return _decode(body, media, content_type, _Limits(max_seconds, max_channels, max_samples))
    except AudioError as exc:
        raise AudioError(f"{str(exc).rstrip('.')}; {CURL_DATA_HINT}", exc.status) from exc


FORM_TYPE = "application/x-www-form-urlencoded"
CURL_DATA_HINT = ("the body came as form data (curl --data), which strips newlines from a file: "
                  "send audio with curl --data-binary @file.wav -H 'Content-Type: audio/wav'")


def _lost_bytes(body: bytes) -> bool:
    """A RIFF whose size field says more than arrived: a file `curl --data` stripped of its newline bytes.
    0 and 0xFFFFFFFF are what streaming writers put there before the size is known."""
    if not body.startswith(b"RIFF") or len(body) < 8:
        return False
    declared = int.from_bytes(body[4:8], "little")
    return declared not in (0, 0xFFFFFFFF) and declared + 8 > len(body)


def _decode(body: bytes, media: MediaType, content_type: str | None, limits: _Limits) -> tuple[np.ndarray, float]:
    if _is_mp4_or_aac(body):
        return _read_with_pyav(body, limits)
    if body.startswith(_CONTAINER_MAGIC) or (media.mime not in RAW_PCM_TYPES and _is_audio_type(media.mime)):
        return _read_container(body, limits)
    if media.mime in RAW_PCM_TYPES:
        return _read_raw_pcm(body, media, limits)
    raise AudioError(
        f"unsupported content type {content_type!r}: send audio/wav (or FLAC/OGG), "
        "audio/L16 or application/octet-stream (raw s16le 16 kHz mono), or multipart field 'file'",
        status=415,
    )


def _is_audio_type(mime: str) -> bool:
    """Audio, unlabelled, or what `curl --data-binary` labels it: worth handing to soundfile."""
    return mime.startswith("audio/") or mime in {"", FORM_TYPE}


@dataclass(frozen=True)
class _Limits:
    max_seconds: float
    max_channels: int
    max_samples: int | None

    def check(self, frames: int, rate: int, channels: int) -> None:
        if channels > self.max_channels:
            raise AudioError(f"audio has {channels} channels; the limit is {self.max_channels}")
        seconds = frames / rate
        if seconds > self.max_seconds:
            raise AudioError(f"audio is {seconds:.1f} s long; the limit is {self.max_seconds:g} s", status=413)
        if self.max_samples is not None and frames * channels > self.max_samples:
            raise AudioError(
                f"audio decodes to {frames * channels:,} samples ({channels} channels × {rate} Hz × "
                f"{seconds:.1f} s); the limit is {self.max_samples:,}", status=413)


def _read_container(body: bytes, limits: _Limits) -> tuple[np.ndarray, float]:
    """Decoded block by block, each downmixed and resampled at once: memory stays a few blocks whatever the file."""
    try:
        with soundfile.SoundFile(io.BytesIO(body)) as sound:
            rate, channels, frames = sound.samplerate, sound.channels, sound.frames
            if rate <= 0:
                raise AudioError("the audio header gives no sample rate")
            limits.check(frames, rate, channels)
            stream = _Resampler(rate)
            block_frames = max(1, _BLOCK_SAMPLES // channels)
            decoded = 0
            while decoded < frames:
                block = sound.read(min(block_frames, frames - decoded), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                decoded += block.shape[0]
                stream.feed(_to_mono(block))
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        if isinstance(exc, AudioError):
            raise
        reason = exc.error_string if isinstance(exc, soundfile.LibsndfileError) else exc  # without the BytesIO repr
        raise AudioError(f"cannot read the audio: {reason}") from exc
    return stream.finish(), decoded / rate


def _is_mp4_or_aac(body: bytes) -> bool:
    """M4A/MP4 (an 'ftyp' box first) or raw ADTS AAC (sync word 0xFFF, layer 0): what libsndfile cannot read."""
    return body[4:8] == b"ftyp" or (len(body) > 1 and body[0] == 0xFF and body[1] & 0xF6 == 0xF0)


def _read_with_pyav(body: bytes, limits: _Limits) -> tuple[np.ndarray, float]:
    """M4A/AAC through PyAV (FFmpeg's decoders; faster-whisper depends on it already). The limits are checked
    from the header's duration first, then again on every decoded frame: the header of an MP4 can lie."""
    import av  # only for the uploads that need it

    out: list[np.ndarray] = []
    decoded = 0
    try:
        with av.open(io.BytesIO(body), mode="r") as container:
            if not container.streams.audio:
                raise AudioError("the file has no audio stream")
            stream = container.streams.audio[0]
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            if not rate or not channels:
                raise AudioError("the audio header gives no sample rate or channels")
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            else:
                raise AudioError("the audio header gives no duration")
            limits.check(round(seconds * rate), rate, channels)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=PIPELINE_RATE)
            for frame in container.decode(stream):
                decoded += frame.samples
                limits.check(decoded, rate, channels)
                out.extend(piece.to_ndarray().reshape(-1) for piece in resampler.resample(frame))
            out.extend(piece.to_ndarray().reshape(-1) for piece in resampler.resample(None))
    except av.error.FFmpegError as exc:  # its str() ends with the file name, "<none>" for a buffer
        raise AudioError(f"cannot read the audio: {exc.strerror or type(exc).__name__}") from exc
    samples = np.concatenate(out) if out else np.zeros(0, np.float32)
    return np.nan_to_num(samples.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0), decoded / rate


def _read_raw_pcm(body: bytes, media: MediaType, limits: _Limits) -> tuple[np.ndarray, float]:
    try:
        rate = int(media.params.get("rate", PIPELINE_RATE))
        channels = int(media.params.get("channels", 1))
    except ValueError as exc:
        raise AudioError(f"bad rate or channels parameter in the content type: {exc}") from exc
    if not 1000 <= rate <= 384000 or channels < 1:
        raise AudioError(f"raw PCM rate {rate} Hz / {channels} channels is out of range")
    frame_bytes = 2 * channels
    if len(body) % frame_bytes:
        raise AudioError(f"raw s16le PCM must be a whole number of {frame_bytes}-byte frames, got {len(body)} bytes")
    frames = len(body) // frame_bytes
    limits.check(frames, rate, channels)
    mono = _to_mono(from_int16(np.frombuffer(body, "<i2")).reshape(-1, channels))
    return resample(mono, rate, PIPELINE_RATE), frames / rate


class _Resampler:
    """soxr's streaming resampler to PIPELINE_RATE, collecting its output."""

    def __init__(self, rate: int):
        self._stream = soxr.ResampleStream(rate, PIPELINE_RATE, 1, dtype="float32", quality="HQ")
        self._out: list[np.ndarray] = []

    def feed(self, mono: np.ndarray) -> None:
        self._out.append(self._stream.resample_chunk(mono, last=False))

    def finish(self) -> np.ndarray:
        self._out.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
        return np.concatenate(self._out)


def _to_mono(data: np.ndarray) -> np.ndarray:
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr HQ); a no-op when the rates match."""
    if from_rate == to_rate or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def from_int16(pcm: np.ndarray) -> np.ndarray:
    """16-bit samples to float32 in [-1, 1)."""
    return pcm.astype(np.float32) / 32768.0


def to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A 16-bit mono WAV file of float samples in [-1, 1] or of int16 samples."""
    pcm = samples if samples.dtype == np.int16 else to_int16(samples)
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


# What encode_audio writes: (soundfile format, subtype, content type).
ENCODINGS = {
    "wav": ("WAV", "PCM_16", "audio/wav"),
    "flac": ("FLAC", "PCM_16", "audio/flac"),
    "opus": ("OGG", "OPUS", "audio/ogg"),  # Ogg Opus: what WhatsApp plays as a voice note
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg"),
}


def encode_audio(pcm: np.ndarray, rate: int, encoding: str) -> bytes:
    """int16 or float mono samples as a file: one of ENCODINGS (libsndfile: FLAC, libopus, LAME)."""
    kind, subtype, _ = ENCODINGS[encoding]
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, rate, subtype=subtype, format=kind)
    return buffer.getvalue()


def window_levels_dbfs(samples: np.ndarray, rate: int = PIPELINE_RATE, window_ms: int = 30) -> np.ndarray:
    """Level of each whole `window_ms` window, in dBFS (RMS); one window when the audio is shorter."""
    window = max(1, rate * window_ms // 1000)
    if samples.size < window:
        window = max(1, samples.size)
    usable = samples[: samples.size - samples.size % window]
    if usable.size == 0:
        return np.array([SILENCE_DBFS])
    power = np.mean(np.square(usable.reshape(-1, window), dtype=np.float64), axis=1)
    return 10 * np.log10(np.maximum(power, 1e-20))


def peak_window_dbfs(samples: np.ndarray, rate: int = PIPELINE_RATE, window_ms: int = 30) -> float:
    """Level of the loudest `window_ms` window, in dBFS (RMS): a cheap "is anything there" test."""
    return float(window_levels_dbfs(samples, rate, window_ms).max())
