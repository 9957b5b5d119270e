"""The gateway's audio at the edge: its wire format to the pipeline's 16 kHz and back.

The 4143 protocol does not say what its binary messages carry (docs/contracts.md §3), so it is a
setting: s16le PCM or G.711 µ-law/A-law, at 8 or 16 kHz. Each call keeps one resampler per
direction whose filter runs on across messages, so message boundaries make no clicks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import soxr

from zapvoice.audio import PIPELINE_RATE, from_int16

Encoding = Literal["pcm16", "mulaw", "alaw"]


# --- G.711, as ITU-T's reference code (and CPython's audioop) computes it, tabulated once ------

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_EVERY_SAMPLE = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)  # indexed by the uint16 view
_EVERY_CODE = np.arange(256, dtype=np.int32)


def _ulaw_encoder() -> np.ndarray:
    x = _EVERY_SAMPLE >> 2  # 14-bit magnitude
    mask = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), 8159) + 0x21
    seg = np.searchsorted(_ULAW_SEG_END, magnitude)
    code = (np.minimum(seg, 7) << 4) | ((magnitude >> (np.minimum(seg, 7) + 1)) & 0xF)
    return ((np.where(seg >= 8, 0x7F, code) ^ mask) & 0xFF).astype(np.uint8)


def _ulaw_decoder() -> np.ndarray:
    u = ~_EVERY_CODE & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_encoder() -> np.ndarray:
    x = _EVERY_SAMPLE >> 3  # 13-bit magnitude
    mask = np.where(x >= 0, 0xD5, 0x55)
    x = np.where(x >= 0, x, -x - 1)
    seg = np.searchsorted(_ALAW_SEG_END, x)
    low = np.where(seg < 2, x >> 1, x >> np.maximum(seg, 1)) & 0xF
    code = (np.minimum(seg, 7) << 4) | low
    return ((np.where(seg >= 8, 0x7F, code) ^ mask) & 0xFF).astype(np.uint8)


def _alaw_decoder() -> np.ndarray:
    a = _EVERY_CODE ^ 0x55
    seg = (a >> 4) & 7
    t = (a & 0xF) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ENCODE = {"mulaw": _ulaw_encoder(), "alaw": _alaw_encoder()}
_DECODE = {"mulaw": _ulaw_decoder(), "alaw": _alaw_decoder()}


def encode(pcm: np.ndarray, encoding: Encoding) -> bytes:
    """int16 samples to the wire: s16le, or one G.711 byte per sample."""
    if encoding == "pcm16":
        return pcm.astype("<i2", copy=False).tobytes()
    return _ENCODE[encoding][pcm.astype(np.int16, copy=False).view(np.uint16)].tobytes()


def decode(data: bytes, encoding: Encoding) -> np.ndarray:
    """The wire to int16 samples. A stray odd byte of s16le is dropped: carried over, it would
    shift every later message by a byte and turn the whole call into noise."""
    if encoding == "pcm16":
        return np.frombuffer(data, "<i2", count=len(data) // 2)
    return _DECODE[encoding][np.frombuffer(data, np.uint8)]


def bytes_per_s(rate: int, encoding: Encoding) -> int:
    """Wire bytes of a second of audio."""
    return rate * (2 if encoding == "pcm16" else 1)


# --- one call's two directions ------------------------------------------------------------------


class EdgeAudio:
    """One call's conversion between the wire and the pipeline. soxr's fixed-rate streams hand out
    audio in ~100 ms bursts; its variable-rate engine (vr) streams message by message, 15 ms (to
    8 kHz) or 30 ms (from 8 kHz) late."""

    def __init__(self, rate: int, encoding: Encoding):
        self.rate = rate
        self.encoding = encoding
        self._inbound = None if rate == PIPELINE_RATE else soxr.ResampleStream(
            rate, PIPELINE_RATE, 1, dtype="float32", quality="HQ", vr=True)
        self._outbound = None if rate == PIPELINE_RATE else soxr.ResampleStream(
            PIPELINE_RATE, rate, 1, dtype="int16", quality="HQ", vr=True)

    def from_wire(self, message: bytes) -> np.ndarray:
        """A binary message of any length to float32 samples at 16 kHz (possibly none yet)."""
        samples = from_int16(decode(message, self.encoding))
        return samples if self._inbound is None else self._inbound.resample_chunk(samples)

    def to_wire(self, frame: np.ndarray) -> bytes:
        """int16 samples at 16 kHz to a binary message (empty while the resampler fills up)."""
        pcm = frame if self._outbound is None else self._outbound.resample_chunk(frame.astype(np.int16, copy=False))
        return encode(pcm, self.encoding)
