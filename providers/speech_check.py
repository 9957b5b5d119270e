"""Decides whether audio holds speech before Whisper sees it.

Whisper transcribes silence and line noise as "Obrigado." or "Thank you." (it learned them
from subtitles); not running it on such audio is both the cure and much faster. Two stages:
a loudness gate that costs microseconds, then the Silero VAD that faster-whisper ships
(about 3 ms per second of audio), which also tells where the speech is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from zapvoice.audio import PIPELINE_RATE, peak_window_dbfs

_EDGE_PAD_S = 0.25  # kept around the speech Silero found, so no syllable is clipped


@dataclass(frozen=True)
class SpeechSpan:
    """Where the speech is, in samples; None from check_speech means there is none."""

    start: int
    end: int


def check_speech(samples: np.ndarray, mode: str, silence_dbfs: float, vad_threshold: float) -> SpeechSpan | None:
    whole = SpeechSpan(0, samples.size)
    if mode == "off":
        return whole
    if samples.size == 0 or peak_window_dbfs(samples) < silence_dbfs:
        return None
    if mode == "energy":
        return whole
    found = get_speech_timestamps(
        samples, VadOptions(threshold=vad_threshold, min_speech_duration_ms=120), sampling_rate=PIPELINE_RATE
    )
    if not found:
        return None
    pad = int(_EDGE_PAD_S * PIPELINE_RATE)
    return SpeechSpan(max(0, found[0]["start"] - pad), min(samples.size, found[-1]["end"] + pad))
