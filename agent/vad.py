"""Turn taking on a live call: when the caller starts talking, pauses and finishes a turn.

`EnergyVAD` compares the level of each 20 ms of caller audio with a noise floor it learns
while the caller is silent. It is an energy detector rather than a neural one because one
process serves dozens of calls on a couple of cores: a 60 ms frame costs one rfft and a few
float comparisons. It counts samples, never reads a clock, so the same audio gives the
same events however it is chunked, in production and in tests.

The level is measured in the speech band only (vad.band_low_hz-band_high_hz, agent/band.py),
and a pause is resumed at a lower level (vad.resume_db) than a turn is started at. Issue 12 (a
turn answered mid-sentence in line noise at 10 dB SNR), measured on 10 real recordings after
steady noise (benchmarks/bench_turn_taking.py): over the whole 0-8 kHz, most misses at 10 and
5 dB SNR were turns cut in a second of quiet syllables that fell under floor + vad.stop_db and,
once the pause was confirmed, never rose vad.start_db above the floor again; the rest were no
turn at all (speech never floor + start_db for vad.onset_ms, or above the stay threshold for
less than vad.min_speech_ms: dropped as a click). The floor was learned right (the noise's own
level within 0.2 dB). In 200-2500 Hz mains hum loses its fundamental and low harmonics, pink noise most
of its power and white noise 70 %, while voiced speech loses about 3 dB; bands swept on the
same recordings (250-3800, 300-3400, 400-3800 Hz; 250-2000 Hz at 10 dB) kept fewer turns in
white or pink noise. Resuming at floor + 7 dB rather than + 9 dB kept 4 more of 30 turns in white noise at
5 dB. The tables are in BENCHMARKS.md.

The events of one utterance come in this order:

    SpeechStarted ──┬── PauseStarted ──┬── SpeechResumed   (back to speaking; repeatable)
                    │                  └── TurnEnded       (same audio as PauseStarted)
                    ├── TurnEnded      (vad.max_utterance_s reached, or a steady sound took over)
                    └── NoiseDropped   (too short to be speech, or a steady sound)

PauseStarted is only sent for an utterance long enough to be a turn, so it is always
followed by SpeechResumed or TurnEnded, never NoiseDropped.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from zapvoice.agent.band import SpeechBand

from zapvoice.audio import PIPELINE_RATE
from zapvoice.settings import VadSettings

SUBFRAME = 320  # samples: the VAD decides every 20 ms whatever the chunking of its input
SUBFRAMES_PER_S = PIPELINE_RATE // SUBFRAME
SILENCE_DBFS = -100.0  # level of digital silence: keeps the floor maths finite
# The floor falls to any level held this long (100 ms): fast, yet one zeroed packet
# (a lost VoIP frame) cannot drag it down.
FALL_SUBFRAMES = 5
# Speech rises and falls with every syllable. A sound whose level holds steady for a whole
# second (the middle 80 % of its sub-frames within STEADY_DB; the trim ignores a few lost
# packets or clicks) is a new background, a fan or a louder line, not a caller: it is
# dropped and its median level becomes the floor. Measured in the speech band on 1 s windows, that
# spread is at most 3.3 dB for stationary noises (white, pink, telephone-band, hum) and at least
# 18 dB for espeak-ng speech over white, pink noise or hum at 15 dB SNR.
STEADY_SUBFRAMES = 50
STEADY_TRIM = 5
STEADY_DB = 6.0
# Crackle (a bad contact, a scratchy line) is pops of a few ms: loud sub-frames, but each holds its
# energy in one short burst where speech spreads it over the whole 20 ms (a voiced sound repeats
# every pitch period, 2.5-12 ms). A sub-frame whose loudest IMPULSE_SLICES slices of SLICE samples
# (7.5 ms) carry at least IMPULSE_SHARE of its energy is measured without them: a pop on silence
# stays silence, a pop on speech stays speech. Measured on 20 ms sub-frames within 30 dB of the
# loudest of 10 real recordings (also through µ-law) and the Piper voice: 1.7 % reach 0.9, at onsets
# and plosives, single sub-frames that a pause or onset counts over; 5 ms pops reach 0.93-1.0.
SLICE = 40
IMPULSE_SLICES = 3
IMPULSE_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started talking (onset confirmed)."""

    at_s: float


@dataclass(frozen=True, slots=True)
class PauseStarted:
    """The caller paused; `audio` is the utterance so far, to transcribe speculatively. `utterance`
    numbers the utterances of this VAD: the TurnEnded with the same number carries this very audio
    (a SpeechResumed in between means the pause was not the end)."""

    at_s: float
    audio: np.ndarray = field(repr=False, compare=False)
    utterance: int


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """The pause was not the end of the turn: discard any speculative transcript."""

    at_s: float


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The caller's turn is over. `audio`: pre-roll + speech + a short silent tail (after a
    pause it is the audio the PauseStarted of the same `utterance` carried, so its speculative
    transcript stands); `speech_s`: from the onset to where speech stopped (the pause, the cut,
    or the start of a steady sound that took over); `speech_end_s`: when it stopped, on the
    clock of `at_s`. The decision lags the end by vad.end_silence_ms after a pause, by nothing
    at the vad.max_utterance_s cut, and by the steady second when a steady sound took over."""

    at_s: float
    audio: np.ndarray = field(repr=False, compare=False)
    speech_s: float
    speech_end_s: float
    utterance: int


@dataclass(frozen=True, slots=True)
class NoiseDropped:
    """What started as speech was a click, a cough or a steady noise: no turn."""

    at_s: float
    speech_s: float


VadEvent = SpeechStarted | PauseStarted | SpeechResumed | TurnEnded | NoiseDropped


class _State(Enum):
    SILENT = "silent"  # no utterance open; the floor learns
    SPEAKING = "speaking"  # utterance open, level above the stay threshold
    PAUSED = "paused"  # utterance open, level below the stay threshold since _pause_at


def _subframes(ms: float) -> int:
    """Sub-frames covering `ms` milliseconds, rounded up."""
    return math.ceil(round(ms * PIPELINE_RATE / 1000) / SUBFRAME)


def _levels_dbfs(frames: np.ndarray, band: SpeechBand) -> np.ndarray:
    """Level of each sub-frame (rows of `frames`) in the speech band, a pop's few ms left out (IMPULSE_SHARE)."""
    # About the sub-frame's own mean: a DC offset is not sound.
    centred = frames.astype(np.float64) - frames.mean(axis=1, keepdims=True, dtype=np.float64)
    slices = np.square(centred).reshape(frames.shape[0], SUBFRAME // SLICE, SLICE).sum(axis=2)
    count = slices.shape[1] - IMPULSE_SLICES + 1
    bursts = sum(slices[:, k:k + count] for k in range(IMPULSE_SLICES))
    offset = np.arange(slices.shape[1]) - np.argmax(bursts, axis=1)[:, None]
    impulsive = np.max(bursts, axis=1, initial=0.0) >= IMPULSE_SHARE * slices.sum(axis=1)
    popped = impulsive[:, None] & (offset >= 0) & (offset < IMPULSE_SLICES)
    power = band.power(centred, np.repeat(~popped, SLICE, axis=1) if impulsive.any() else None)
    # fmax turns digital silence (and NaN from corrupt input) into SILENCE_DBFS.
    return 10.0 * np.log10(np.fmax(power, 10 ** (SILENCE_DBFS / 10)))


class EnergyVAD:
    """Speech/pause/end-of-turn detector for one caller's 16 kHz mono float32 stream.

    Feed every chunk to `process()` (any size); act on the events it returns. An event's
    `at_s` is when the VAD decided, in seconds of audio since it was created: onsets are
    confirmed vad.onset_ms late, pauses vad.pause_ms late, turn ends vad.end_silence_ms late.
    `in_speech`, `speech_ms` and `noise_floor_dbfs` are for barge-in while the bot talks.
    """

    def __init__(self, vad: VadSettings):
        self._start_db = vad.start_db
        self._stop_db = vad.stop_db
        self._band = SpeechBand(SUBFRAME, vad.band_low_hz, vad.band_high_hz)
        self._min_start_dbfs = vad.min_level_dbfs
        # The absolute minimum gets the same hysteresis as the floor-relative threshold.
        self._min_stay_dbfs = vad.min_level_dbfs - (vad.start_db - vad.stop_db)
        self._resume_db = vad.resume_db
        self._min_resume_dbfs = vad.min_level_dbfs - (vad.start_db - vad.resume_db)
        self._onset = _subframes(vad.onset_ms)
        self._min_speech = _subframes(vad.min_speech_ms)
        self._end = _subframes(vad.end_silence_ms)
        self._pause = min(_subframes(vad.pause_ms), self._end)
        self._max = _subframes(vad.max_utterance_s * 1000)
        self._rise = 1.0 - math.exp(-1.0 / (SUBFRAMES_PER_S * vad.floor_rise_s))
        # One sub-frame more than the pre-roll: speech may begin up to a sub-frame before the
        # first sub-frame loud enough to count, and the pre-roll is promised before the speech.
        self._history: deque[np.ndarray] = deque(maxlen=_subframes(vad.preroll_ms) + 1 + self._onset)
        self._recent: deque[float] = deque(maxlen=FALL_SUBFRAMES)
        self._steady: deque[float] = deque(maxlen=STEADY_SUBFRAMES)
        self._floor = SILENCE_DBFS
        self._clock = 0  # sub-frames processed so far
        self._remainder = np.zeros(0, np.float32)
        self._utterances = 0  # utterances opened so far: the number of the open one
        self.reset()

    def reset(self) -> None:
        """Forget any open utterance without events (e.g. when the bot stops talking). The
        noise floor, the clock and the recent audio (the next pre-roll) are kept."""
        self._state = _State.SILENT
        self._loud = 0  # consecutive sub-frames above the start threshold
        self._resuming = 0  # consecutive sub-frames above the resume threshold
        self._onset_at = 0  # sub-frame where the open utterance's speech began
        self._pause_at = 0  # sub-frame where the current pause began
        self._utterance: list[np.ndarray] = []  # sub-frames of the open utterance, pre-roll first
        self._utterance_at = 0  # sub-frame index of _utterance[0]
        self._pause_audio: np.ndarray | None = None  # audio of the PauseStarted sent for this pause

    @property
    def in_speech(self) -> bool:
        """An utterance is open: from SpeechStarted until TurnEnded or NoiseDropped, pauses included."""
        return self._state is not _State.SILENT

    @property
    def speech_ms(self) -> float:
        """How long the open utterance has been speech (up to the pause, when paused); 0 when silent."""
        if self._state is _State.SILENT:
            return 0.0
        end = self._pause_at if self._state is _State.PAUSED else self._clock
        return (end - self._onset_at) * 1000.0 / SUBFRAMES_PER_S

    @property
    def quiet_ms(self) -> float:
        """How long the open utterance has been quiet (below the stay threshold); 0 while speaking or silent."""
        if self._state is not _State.PAUSED:
            return 0.0
        return (self._clock - self._pause_at) * 1000.0 / SUBFRAMES_PER_S

    def end_turn(self, utterance: int) -> TurnEnded | None:
        """End utterance number `utterance` now, in the pause its last PauseStarted announced, for an
        end-of-turn policy that knows sooner than vad.end_silence_ms: the TurnEnded that silence would
        have sent, with the same audio. None if that utterance is no longer in that pause."""
        if self._state is not _State.PAUSED or self._pause_audio is None or utterance != self._utterances:
            return None
        events: list[VadEvent] = []
        self._close(self._pause_at, events)
        ended = events[0]
        assert isinstance(ended, TurnEnded), ended  # a PauseStarted was sent: the utterance is long enough
        return ended

    @property
    def noise_floor_dbfs(self) -> float:
        """The learned background level (RMS dBFS per 20 ms)."""
        return self._floor

    def process(self, samples: np.ndarray) -> list[VadEvent]:
        """Consume a chunk of audio; return the events it completed, oldest first.

        Samples short of a whole sub-frame wait for the next call. The chunk is copied, so the
        caller may reuse its buffer.
        """
        block = np.concatenate((self._remainder, np.asarray(samples, dtype=np.float32).reshape(-1)))
        whole = block.size - block.size % SUBFRAME
        self._remainder = block[whole:]
        frames = block[:whole].reshape(-1, SUBFRAME)
        levels = _levels_dbfs(frames, self._band).tolist()
        events: list[VadEvent] = []
        for frame, level in zip(frames, levels):
            self._step(frame, level, events)
        return events

    def _step(self, frame: np.ndarray, level: float, events: list[VadEvent]) -> None:
        now = self._clock
        self._clock += 1
        if now == 0:
            self._floor = level  # a first guess, corrected within 100 ms if the line is quieter
        self._history.append(frame)
        self._recent.append(level)
        start = max(self._floor + self._start_db, self._min_start_dbfs)
        stay = max(self._floor + self._stop_db, self._min_stay_dbfs)
        self._loud = self._loud + 1 if level >= start else 0
        resume = max(self._floor + self._resume_db, self._min_resume_dbfs)
        self._resuming = self._resuming + 1 if level >= resume else 0

        if self._state is _State.SILENT:
            self._learn_floor(level)
            if self._loud >= self._onset:
                self._open(events)
            return

        self._utterance.append(frame)
        self._steady.append(level)
        if self._state is _State.SPEAKING:
            background = self._steady_level()
            if level < stay:
                self._state, self._pause_at = _State.PAUSED, now
            elif background is not None:
                self._floor = background
                self._close(self._clock - STEADY_SUBFRAMES, events)
            elif self._clock - self._onset_at >= self._max:
                self._close(self._clock, events)
                self._history.clear()  # the next utterance continues this one: no audio twice
            return

        quiet = self._clock - self._pause_at  # sub-frames since the level dropped, this one included
        if quiet <= self._pause and level >= stay:
            self._state = _State.SPEAKING  # only a dip between syllables
            return
        if quiet < self._pause:
            return
        self._learn_floor(level)  # the pause is confirmed: the caller is silent
        if self._resuming >= self._onset:
            self._state = _State.SPEAKING
            if self._pause_audio is not None:
                events.append(SpeechResumed(self._clock / SUBFRAMES_PER_S))
                self._pause_audio = None
        elif quiet == self._end:
            self._close(self._pause_at, events)
        elif quiet == self._pause and self._pause_at - self._onset_at >= self._min_speech:
            self._pause_audio = self._audio_until(self._clock)
            events.append(PauseStarted(self._clock / SUBFRAMES_PER_S, self._pause_audio, self._utterances))

    def _learn_floor(self, level: float) -> None:
        """Rise slowly towards the level; fall at once to the loudest of the last 100 ms if lower."""
        self._floor = min(self._floor + self._rise * (level - self._floor), max(self._recent))

    def _steady_level(self) -> float | None:
        """The median level of the utterance's last second if that second was steady, else None."""
        if len(self._steady) < STEADY_SUBFRAMES:
            return None
        levels = sorted(self._steady)
        if levels[-1 - STEADY_TRIM] - levels[STEADY_TRIM] >= STEADY_DB:
            return None
        return levels[STEADY_SUBFRAMES // 2]

    def _open(self, events: list[VadEvent]) -> None:
        self._state = _State.SPEAKING
        self._onset_at = self._clock - self._onset
        self._utterances += 1
        self._utterance = list(self._history)
        self._utterance_at = self._clock - len(self._utterance)
        self._steady.clear()
        events.append(SpeechStarted(self._clock / SUBFRAMES_PER_S))

    def _close(self, speech_end: int, events: list[VadEvent]) -> None:
        """End the utterance whose speech stopped at sub-frame `speech_end`: a turn if long enough."""
        speech = speech_end - self._onset_at
        at_s = self._clock / SUBFRAMES_PER_S
        if speech >= self._min_speech:
            audio = self._pause_audio  # set when PauseStarted went out for this very pause
            if audio is None:
                audio = self._audio_until(min(speech_end + self._pause, self._clock))
            events.append(TurnEnded(at_s, audio, speech / SUBFRAMES_PER_S, speech_end / SUBFRAMES_PER_S,
                                    self._utterances))
        else:
            events.append(NoiseDropped(at_s, speech / SUBFRAMES_PER_S))
        self.reset()

    def _audio_until(self, end: int) -> np.ndarray:
        """The utterance's samples up to sub-frame `end`, read-only: events may share them."""
        audio = np.concatenate(self._utterance[: end - self._utterance_at])
        audio.flags.writeable = False
        return audio
