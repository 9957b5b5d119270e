"""The gateway's edge audio (agent/gateway/codec.py): G.711 against the reference, and the per-call
streaming resamplers (steady chunk sizes, no clicks at message boundaries)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from zapvoice.agent.gateway.codec import EdgeAudio, decode, encode

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = bytes(range(256))


def test_known_g711_values():
    # Silence, the smallest negative step, and full scale both ways (ITU-T G.711 tables).
    edges = np.array([0, -1, 32767, -32768], np.int16)
    assert encode(edges, "mulaw") == bytes([0xFF, 0x7E, 0x80, 0x00])
    assert encode(edges, "alaw") == bytes([0xD5, 0x55, 0xAA, 0x2A])
    assert decode(bytes([0xFF, 0x7F, 0x80, 0x00]), "mulaw").tolist() == [0, 0, 32124, -32124]
    assert decode(bytes([0xD5, 0x55, 0xAA, 0x2A]), "alaw").tolist() == [8, -8, 32256, -32256]


@pytest.mark.parametrize("encoding, lin2, to_lin",
                         [("mulaw", "lin2ulaw", "ulaw2lin"), ("alaw", "lin2alaw", "alaw2lin")])
def test_g711_is_bit_exact_with_the_reference_for_every_value(encoding, lin2, to_lin):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # CPython's C port of the reference code (gone in 3.13)
    assert encode(EVERY_SAMPLE, encoding) == getattr(audioop, lin2)(EVERY_SAMPLE.tobytes(), 2)
    assert decode(EVERY_CODE, encoding).tobytes() == getattr(audioop, to_lin)(EVERY_CODE, 2)


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_g711_round_trips(encoding):
    codes = [code for code in EVERY_CODE if not (encoding == "mulaw" and code == 0x7F)]  # µ-law has two zeros
    assert encode(decode(bytes(codes), encoding), encoding) == bytes(codes)
    error = np.abs(decode(encode(EVERY_SAMPLE, encoding), encoding).astype(np.int32) - EVERY_SAMPLE)
    assert np.all(error <= np.maximum(np.abs(EVERY_SAMPLE.astype(np.int32)) // 16, 16))  # 8 bits, log-scaled


def test_pcm16_is_little_endian_and_a_stray_odd_byte_is_dropped():
    assert encode(np.array([1, -2], np.int16), "pcm16") == b"\x01\x00\xfe\xff"
    assert decode(b"\x01\x00\xfe\xff\x07", "pcm16").tolist() == [1, -2]


def tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    return (np.sin(2 * np.pi * hz * np.arange(round(rate * seconds)) / rate) * 10000).astype(np.int16)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_outbound_frames_become_steady_chunks_without_clicks(rate):
    edge = EdgeAudio(rate, "pcm16")
    frames = tone(16000, 1.0).reshape(-1, 320)  # the Playout's 20 ms frames
    messages = [edge.to_wire(frame) for frame in frames]
    sizes = [len(m) // 2 for m in messages]
    assert sizes[1:] == [rate // 50] * (len(frames) - 1) and sizes[0] <= rate // 50  # one chunk per frame
    out = decode(b"".join(messages), "pcm16").astype(np.float64)
    steady = out[rate // 50:]  # a 440 Hz tone moves at most 2π·440/rate·10000 per sample: a click moves more
    assert np.max(np.abs(np.diff(steady))) <= 2 * np.pi * 440 / rate * 10000 * 1.05
    assert 9000 < np.max(np.abs(steady)) < 10500


def test_inbound_messages_of_any_size_come_out_at_16k_in_one_piece():
    edge = EdgeAudio(8000, "mulaw")
    wire = encode(tone(8000, 1.0), "mulaw")
    cuts = [0, 1, 161, 320, 777, 2000, 4000, 8000]  # odd, tiny and large messages
    out = np.concatenate([edge.from_wire(wire[a:b]) for a, b in zip(cuts, cuts[1:])])
    assert out.dtype == np.float32 and 16000 - 480 <= out.size <= 16000  # 30 ms stay in the filter
    steady = out[400:-400] * 32768
    assert np.max(np.abs(np.diff(steady))) <= 2 * np.pi * 440 / 16000 * 10000 * 1.1
    assert EdgeAudio(16000, "pcm16").from_wire(encode(tone(16000, 0.02), "pcm16")).size == 320  # no resampling
