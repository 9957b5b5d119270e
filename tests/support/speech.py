"""Speech-like test audio from espeak-ng (Debian package), which Silero VAD accepts as speech."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import soundfile

from zapvoice.audio import PIPELINE_RATE, resample


def speak(text: str, voice: str = "pt-br") -> np.ndarray:
    """float32 mono 16 kHz speech of `text`."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is missing: apt-get install espeak-ng (.ci/run does)")
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return resample(samples, rate, PIPELINE_RATE)


def noise(seconds: float, dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
    rms = 10 ** (dbfs / 20)
    return np.random.default_rng(seed).normal(0, rms, int(seconds * PIPELINE_RATE)).astype(np.float32)
