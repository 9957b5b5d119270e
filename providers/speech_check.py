"""Decides whether audio holds speech before Whisper sees it.

Whisper transcribes silence and line noise as "Obrigado." or "Thank you." (it learned them
from subtitles); not running it on such audio is both the cure and much faster. Two stages:
a loudness gate that costs microseconds, then the Silero VAD that faster-whisper ships
(about 3 ms per second of audio). Silero only says whether there is speech, not where: on
8 kHz G.711 audio it scores a caller's first words at 0.1-0.3 and would have cut "eight of
spades" off a real recording. The span handed to Whisper is trimmed of true silence only
(30 ms windows below the loudness gate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from zapvoice.audio import PIPELINE_RATE, window_levels_dbfs

_EDGE_PAD_S = 0.25  # kept around the loud part, so no soft syllable edge is clipped
_WINDOW_MS = 30


@dataclass(frozen=True)
class SpeechSpan:
    """Where the speech is, in samples; None from check_speech means there is none."""

    start: int
    end: int


def check_speech(samples: np.ndarray, mode: str, silence_dbfs: float, vad_threshold: float) -> SpeechSpan | None:
    if mode == "off":
        return SpeechSpan(0, samples.size)
    loud = np.flatnonzero(window_levels_dbfs(samples, PIPELINE_RATE, _WINDOW_MS) >= silence_dbfs)
    if samples.size == 0 or loud.size == 0:
        return None
    if mode == "silero":
        found = get_speech_timestamps(
            samples, VadOptions(threshold=vad_threshold, min_speech_duration_ms=120), sampling_rate=PIPELINE_RATE
        )
        if not found:
            return None
    window = PIPELINE_RATE * _WINDOW_MS // 1000
    pad = int(_EDGE_PAD_S * PIPELINE_RATE)
    return SpeechSpan(max(0, loud[0] * window - pad), min(samples.size, (loud[-1] + 1) * window + pad))
