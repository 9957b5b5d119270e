"""Removes the bot's own voice from the caller's audio before turn taking hears it.

A speakerphone or a 2-wire hybrid sends part of what the bot says back on the caller's line,
12-24 dB down and 20-200 ms late. An energy VAD cannot tell that echo from a caller talking
over the bot: the bot paused at its own words and cut itself off. The agent knows exactly
what the far end is playing, so WebRTC's echo canceller (AEC3, through the LiveKit SDK's
prebuilt AudioProcessingModule) subtracts it: it estimates the echo path's delay and loss per
call from the reference and the line, also through a µ-law or A-law round trip, and keeps a
caller who talks over the bot (double talk).

AEC3 has a catch, measured on real recordings: on a line that carries no echo at all (most
digital lines) it never finds an echo path, stays unsure, and its suppressor then eats a caller
who talks over the bot (onsets 0.3-2.5 s late, some missed) and pumps a noisy line's background
by 20-30 dB while the bot talks (which an energy VAD takes for speech). So an `EchoDetector`
decides per call whether there is an echo, from how the line's 10 ms levels follow the
reference's at the best delay (0-300 ms), and the VAD hears: the canceller's output once an echo
was seen (for the rest of the call: a line keeps its echo), the line as it is once a window of
the bot talking showed none, and until then (the first 2.3 s) the line as it is too, but with
the bot's word on what it is: `could_be_echo()` says a sound may still be the echo of what the
far end played in the last 300 ms. The conversation then pauses its output and listens: a caller
goes on talking once nothing the bot played can come back, an echo dies with it. A sound that
died so (`suspect()`) turns on a level gate for the rest of that time, so an echoing line costs
one pause rather than a stutter. A level gate from the start cost callers who talked over the
greeting on a clean line: measured, sentences 6 dB below the bot's level were not heard until
the greeting ended. A line judged clean that starts to echo later (a speakerphone turned on) is
caught by its words: a caller transcript that repeats the bot's last words (agent/backchannel.py)
makes the detector judge again (`heard_itself()`), with the gate on meanwhile.
Correlations measured (µ-law, 20-200 ms): 0.68-0.99 with echo 12-40 dB down, 0.06-0.19 with
none; a caller talking over the bot blurs both, so "no echo" also needs the line to have stayed
at its own level throughout the window.

The reference is a timeline of what Playout sent, placed where the far end plays it (Playout
paces the far end's queue, so it knows), and read back for each 10 ms of caller audio at the
time that audio arrived. Pause, resume and clear need nothing special: silence on the timeline
is silence played. The canceller sees the line's own delay on top of the acoustic one; AEC3's
delay estimator covers both (measured to 200 ms, benchmarks/bench_turn_taking.py).
"""

from __future__ import annotations

import numpy as np
from zapvoice.agent.band import SpeechBand
from zapvoice.agent.clock import Clock

from zapvoice.audio import PIPELINE_RATE, from_int16, to_int16

BLOCK = PIPELINE_RATE // 100  # AEC3 takes 10 ms frames
HISTORY_S = 2.0  # reference kept behind the newest caller audio: past AEC3's delay range
WINDOW_BLOCKS = 200  # the detector judges 2 s of audio
MAX_LAG_BLOCKS = 30  # echo delays it looks for: up to 300 ms
JUDGE_EVERY_BLOCKS = 50  # and judges again every 500 ms
MIN_TALK_BLOCKS = 60  # when the bot talked at least 600 ms of the window
TALK_DBFS = -50.0  # a reference block this loud is the bot talking
REFERENCE_FLOOR_DBFS = -60.0  # levels are clamped so digital silence does not dominate
LINE_FLOOR_DBFS = -70.0
ECHO_CORRELATION = 0.6
NO_ECHO_CORRELATION = 0.4
QUIET_SPREAD_DB = 6.0  # the 10-90 % spread of a steady line's 10 ms levels (noise: about 2-3 dB)
# Once a sound died with the bot's audio and until the detector knows, a block is the caller only when louder
# than the loudest echo the bot's last 300 ms could make on the worst line the agent is built for (12 dB
# down) by a margin; quieter blocks are brought down to the line's own level (not to silence: the VAD's
# noise floor must not move).
WORST_LOSS_DB = 12.0
GATE_MARGIN_DB = 6.0
_LAGS = np.arange(MAX_LAG_BLOCKS + 1)  # the blocks of the last 300 ms, newest first
MAX_LIFT_DB = 40.0  # the most a suppressed block is lifted back towards the line's own level


def _level_dbfs(pcm: np.ndarray) -> float:
    power = float(np.mean(np.square(pcm, dtype=np.float64))) / 32768.0 ** 2
    return 10.0 * np.log10(max(power, 1e-10))


class EchoDetector:
    """Whether the caller's line carries the bot's voice back: None (not known yet), True or False. The line's
    own level (what the gate and the lift bring blocks to) is measured in `band_hz`, the VAD's speech band."""

    def __init__(self, band_hz: tuple[float, float]) -> None:
        self._band = SpeechBand(BLOCK, *band_hz)
        size = WINDOW_BLOCKS + MAX_LAG_BLOCKS
        self._reference = np.full(size, REFERENCE_FLOOR_DBFS)  # ring of levels, oldest first at _next
        self._line = np.full(size, LINE_FLOOR_DBFS)
        self._band_line = np.full(size, LINE_FLOOR_DBFS)  # the same blocks in the speech band
        self._next = 0
        self._blocks = 0
        self.echo: bool | None = None

    def bot_audible(self) -> bool:
        """Whether the far end played the bot in the 300 ms before the block just added: its echo may be in it."""
        return bool(self._recent_reference().max() >= TALK_DBFS)

    def _recent_reference(self) -> np.ndarray:
        return self._reference[(self._next - 1 - _LAGS) % self._reference.size]

    def gate_gain(self) -> float:
        """For the block just added while the echo is suspected, not known: 1 if it is louder than any echo of
        what the bot played could be, else the gain that brings it down to the line's own level (its 10th
        percentile)."""
        newest = self._next - 1
        if self._line[newest] > self._recent_reference().max() - WORST_LOSS_DB + GATE_MARGIN_DB:
            return 1.0
        return float(10 ** (min(0.0, self.line_floor_dbfs() - self._band_line[newest]) / 20))

    def band_levels_dbfs(self, blocks: np.ndarray) -> np.ndarray:
        """Each block's level (rows of int16-scaled samples) as the VAD measures it, in the speech band: the
        gate and the lift bring blocks to the line's own level there, where a hum below the band cannot hide
        an echo. One rfft for a whole chunk's blocks."""
        power = self._band.power(np.asarray(blocks, np.float64)) / 32768.0 ** 2
        return 10.0 * np.log10(np.maximum(power, 1e-10))

    def line_floor_dbfs(self) -> float:
        """The line's own level in the speech band: the 10th percentile of its recent 10 ms levels (echo and
        speech have gaps)."""
        levels = self._band_line[: min(self._blocks, self._line.size)]
        tenth = (levels.size - 1) // 10  # nearest rank: a partial sort, not np.percentile's full one, per block
        return float(np.partition(levels, tenth)[tenth])

    def add(self, reference: np.ndarray, line: np.ndarray, band_dbfs: float | None = None) -> None:
        """One 10 ms block: what the far end played and what the line brought at the same time (int16);
        `band_dbfs`: the line block's band level when measured already, with its chunk's others."""
        if band_dbfs is None:
            band_dbfs = float(self.band_levels_dbfs(line[np.newaxis])[0])
        self._reference[self._next] = max(_level_dbfs(reference), REFERENCE_FLOOR_DBFS)
        self._line[self._next] = max(_level_dbfs(line), LINE_FLOOR_DBFS)
        self._band_line[self._next] = max(band_dbfs, LINE_FLOOR_DBFS)
        self._next = (self._next + 1) % self._reference.size
        self._blocks += 1
        if self.echo is not True and self._blocks >= self._line.size and self._blocks % JUDGE_EVERY_BLOCKS == 0:
            self._judge()

    def correlation(self) -> float | None:
        """How closely the line's levels follow the reference's at the best delay, over the blocks where the
        bot talked (the caller talking while the bot is silent tells nothing); None if it barely talked."""
        reference = np.roll(self._reference, -self._next)[:WINDOW_BLOCKS]
        talking = reference >= TALK_DBFS
        if np.count_nonzero(talking) < MIN_TALK_BLOCKS:
            return None
        lagged = np.lib.stride_tricks.sliding_window_view(np.roll(self._line, -self._next), WINDOW_BLOCKS)
        ref = reference[talking] - reference[talking].mean()
        lines = lagged[:, talking]
        lines = lines - lines.mean(axis=1, keepdims=True)
        spread = np.sqrt(np.sum(ref ** 2) * np.sum(lines ** 2, axis=1))
        return float(np.max(np.divide(lines @ ref, spread, out=np.zeros(len(lines)), where=spread > 0)))

    def _judge(self) -> None:
        correlation = self.correlation()
        if correlation is None:
            return
        if correlation >= ECHO_CORRELATION:
            self.echo = True
        elif correlation < NO_ECHO_CORRELATION and self._line_stayed_quiet():
            self.echo = False

    def _line_stayed_quiet(self) -> bool:
        """The line kept to its own level while the bot talked: nothing came back, and the caller did not
        talk over the bot (that blurs an echo's correlation as much as having none)."""
        low, high = np.percentile(self._line, [10, 90])
        return bool(high - low < QUIET_SPREAD_DB)


class EchoCanceller:
    """One call's echo canceller. `played()` gets what the bot sends, `cancel()` the caller's audio;
    `band_hz` is the VAD's speech band (vad.band_low_hz, vad.band_high_hz)."""

    def __init__(self, clock: Clock, band_hz: tuple[float, float]):
        # Imported here: the SDK loads its native library on import, which calls without the
        # canceller (turns.echo_cancellation off) need not pay for.
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self._clock = clock
        self._origin = round(clock.now() * PIPELINE_RATE)  # timeline sample 0
        self._reference = np.zeros(0, np.int16)  # far-end audio from timeline sample _base on
        self._base = 0
        self._pending = np.zeros(0, np.float32)  # caller samples short of a block
        self._pending_start = 0  # timeline sample of the pending caller audio's first sample
        self._suspected = False  # a sound died with the bot's audio while the detector did not know
        self.detector = EchoDetector(band_hz)

    def could_be_echo(self) -> bool:
        """Whether the newest caller audio may be the bot's echo: the detector does not know yet and the far end
        played the bot within the echo delays it covers. Once an echo is known it is cancelled, and a line
        known to have none carries only the caller."""
        return self.detector.echo is None and self.detector.bot_audible()

    def heard_itself(self) -> None:
        """The caller's words were the bot's own: the line echoes after all, though the detector saw none (a
        speakerphone turned on mid-call). It judges the line again, with the level gate on meanwhile."""
        if self.detector.echo is False:
            self.detector.echo = None
        self._suspected = True

    def suspect(self) -> None:
        """A sound over the bot stopped when the bot's audio did: likely its echo. Until the detector knows,
        blocks no louder than an echo could be are held to the line's level."""
        self._suspected = True

    def played(self, frame: np.ndarray, start_s: float) -> None:
        """A frame of int16 audio the far end starts playing at clock time `start_s`."""
        start = round(start_s * PIPELINE_RATE) - self._origin - self._base
        if start < 0:  # partly behind the kept history (Playout never sends audio for the past)
            frame, start = frame[min(-start, frame.size):], 0
        end = start + frame.size
        if end > self._reference.size:
            self._reference = np.concatenate((self._reference, np.zeros(end - self._reference.size, np.int16)))
        self._reference[start:end] = frame

    def cancel(self, samples: np.ndarray) -> np.ndarray:
        """The caller's 16 kHz float32 audio, which arrived just now, with the bot's echo removed.
        Returns whole 10 ms blocks: up to 9.9 ms of audio waits for the next chunk."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        block = np.concatenate((self._pending, samples))
        whole = block.size - block.size % BLOCK
        # The chunk's last sample arrived now, unless audio came faster than real time (a burst): then it
        # follows the audio before it, so no two chunks claim the same moment. Pending audio keeps its place.
        arrived_end = round(self._clock.now() * PIPELINE_RATE) - self._origin
        first = self._pending_start if self._pending.size else max(self._pending_start, arrived_end - samples.size)
        out = np.empty(whole, np.float32)
        pcm = to_int16(block[:whole])
        band_dbfs = self.detector.band_levels_dbfs(pcm.reshape(-1, BLOCK)).tolist()
        for offset in range(0, whole, BLOCK):
            reference = self._reference_at(first + offset)
            line = pcm[offset:offset + BLOCK]
            self.detector.add(reference, line, band_dbfs[offset // BLOCK])
            self._apm.process_reverse_stream(self._rtc.AudioFrame(reference.tobytes(), PIPELINE_RATE, 1, BLOCK))
            capture = self._rtc.AudioFrame(line.tobytes(), PIPELINE_RATE, 1, BLOCK)
            self._apm.set_stream_delay_ms(0)
            self._apm.process_stream(capture)
            if self.detector.echo:
                cancelled = from_int16(np.frombuffer(capture.data, np.int16))
                out[offset:offset + BLOCK] = cancelled * np.float32(self._up_to_floor(cancelled))
            elif self.detector.echo is None and self._suspected:
                out[offset:offset + BLOCK] = block[offset:offset + BLOCK] * np.float32(self.detector.gate_gain())
            else:  # no echo, or none suspected yet: the canceller kept in step, but the line is heard as it is
                out[offset:offset + BLOCK] = block[offset:offset + BLOCK]
        self._pending = block[whole:]
        self._pending_start = first + whole
        self._forget(first + whole)
        return out

    def _up_to_floor(self, cancelled: np.ndarray) -> float:
        """Gain that lifts a block AEC3 suppressed below the line's own level back to it. AEC3 turns down
        the whole line while it removes an echo, background included, which comes back in the bot's
        pauses: on a humming line that rise looked like the caller starting to talk."""
        level = float(self.detector.band_levels_dbfs(cancelled[np.newaxis] * 32768.0)[0])
        return float(10 ** (min(MAX_LIFT_DB, max(0.0, self.detector.line_floor_dbfs() - level)) / 20))

    def _reference_at(self, at: int) -> np.ndarray:
        """The far end's audio for the block starting at timeline sample `at` (silence where none)."""
        out = np.zeros(BLOCK, np.int16)
        lo, hi = at - self._base, at - self._base + BLOCK
        src_lo, src_hi = max(lo, 0), min(hi, self._reference.size)
        if src_hi > src_lo:
            out[src_lo - lo:src_hi - lo] = self._reference[src_lo:src_hi]
        return out

    def _forget(self, now: int) -> None:
        drop = now - round(HISTORY_S * PIPELINE_RATE) - self._base
        if drop > 0:
            self._reference = self._reference[drop:]
            self._base += drop
