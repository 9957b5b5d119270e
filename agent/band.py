"""The level of caller audio in the speech band, shared by the VAD and the echo canceller's gate.

Line noise puts much of its power where speech has little: mains hum at 50/60 Hz and its low
harmonics, pink noise (equal power per octave) below a few hundred hertz, hiss spread evenly up to
8 kHz while voiced speech keeps most of its power under 2.5 kHz. Measured in the band only, a noisy
line's quiet syllables stand that much further above the noise (benchmarks/bench_turn_taking.py).
A Hann-windowed rfft per frame is one numpy call for a whole chunk, and the window keeps a strong
hum's leakage out of the band.
"""

from __future__ import annotations

import numpy as np

from zapvoice.audio import PIPELINE_RATE


class SpeechBand:
    """Mean square of the part of `size`-sample frames between `low_hz` and `high_hz` (16 kHz audio)."""

    def __init__(self, size: int, low_hz: float, high_hz: float):
        self.window = np.hanning(size)
        freqs = np.fft.rfftfreq(size, 1 / PIPELINE_RATE)
        # A bin stands for its negative-frequency twin too, except DC and Nyquist; with the window's power
        # this turns a power spectrum into the band's share of the frame's mean square.
        weights = np.where((freqs >= low_hz) & (freqs <= high_hz), 2.0, 0.0)
        weights[[0, -1]] /= 2
        self._window_power = float(np.sum(self.window ** 2))
        self._weights = weights / (size * self._window_power)

    def power(self, frames: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
        """Per row of `frames`, the band's mean square. `kept` (rows × samples of 0/1) leaves samples out,
        e.g. a pop; the rest are measured as if they were the whole frame."""
        window = self.window if kept is None else self.window * kept
        spectrum = np.fft.rfft(frames * window, axis=-1)
        power = (np.square(spectrum.real) + np.square(spectrum.imag)) @ self._weights
        if kept is None:
            return power
        return power * self._window_power / np.sum(np.square(window), axis=-1)
