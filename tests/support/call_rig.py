"""Runs a Conversation against a scripted caller on a virtual clock, with no network.

The caller sends 60 ms chunks in (clock) real time: background noise, or the speech its
script says. The line keeps every frame the bot sent with its clock time and plays them
out like the far end does (one frame per 60 ms, queued audio played late), so a test can
ask what the caller heard and when. `echo` puts what the caller heard back on their line
(loss in dB, delay in s), as a speakerphone or a hybrid does; `codec` passes the line through
µ-law or A-law (at 16 kHz), whose distortion an echo canceller must survive.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from zapvoice.agent.conversation import Conversation
from zapvoice.agent.gateway.codec import Encoding, decode, encode
from zapvoice.agent.line import CallInfo

from tests.support.speech import noise
from zapvoice.audio import PIPELINE_RATE, from_int16, to_int16

CHUNK = 960  # 60 ms, like ZuckZapGo
AUDIBLE = 10 ** (-45 / 20) * 32768


class RecordingLine:
    frame_samples = CHUNK
    tools = ()

    def __init__(self, clock, lead_frames: int = 2):
        self.clock = clock
        self.lead_frames = lead_frames
        self.sent: list[tuple[float, np.ndarray]] = []
        self.hung_up_at: float | None = None

    async def send(self, frame: np.ndarray) -> None:
        assert frame.dtype == np.int16 and frame.size == self.frame_samples
        self.sent.append((self.clock.now(), frame.copy()))

    async def hang_up(self) -> None:
        self.hung_up_at = self.clock.now()

    def played(self) -> list[tuple[float, float, bool]]:
        """(start, end, audible) of each frame as the far end plays them."""
        return [(start, end, bool(np.sqrt(np.mean(frame.astype(np.float64) ** 2)) > AUDIBLE))
                for start, end, frame in self._played_frames()]

    def heard_audio(self, start_s: float, samples: int) -> np.ndarray:
        """int16 audio the far end played from clock time `start_s` on (silence where it played none)."""
        out = np.zeros(samples, np.int16)
        first = round(start_s * PIPELINE_RATE)
        for start, _, frame in self._played_frames():
            at = round(start * PIPELINE_RATE) - first
            lo, hi = max(at, 0), min(at + frame.size, samples)
            if hi > lo:
                out[lo:hi] = frame[lo - at:hi - at]
        return out

    def _played_frames(self):
        """(start, end, frame) of each frame sent, as the far end plays them."""
        ends = 0.0
        frame_s = self.frame_samples / PIPELINE_RATE
        for at, frame in self.sent:
            start = max(at, ends)
            ends = start + frame_s
            yield start, ends, frame

    def bot_speech_segments(self, hold_s: float = 0.3) -> list[tuple[float, float]]:
        segments: list[list[float]] = []
        for start, end, audible in self.played():
            if audible:
                if segments and start - segments[-1][1] < hold_s:
                    segments[-1][1] = end
                else:
                    segments.append([start, end])
        return [(a, b) for a, b in segments]

    def max_ahead_frames(self) -> float:
        """How far ahead of real time the far end's queue got, in frames, right after each send."""
        frame_s = self.frame_samples / PIPELINE_RATE
        return max(((end - at) / frame_s for (at, _), (_, end, _) in zip(self.sent, self.played())), default=0)


@dataclass
class Say:
    """The caller speaks; the next step starts when the audio has been sent."""

    audio: np.ndarray


@dataclass
class Wait:
    seconds: float


@dataclass
class UntilBotDone:
    """Wait until the bot has spoken and then been silent for `silent_s` (turn taking)."""

    silent_s: float = 0.5
    timeout_s: float = 20.0


@dataclass
class EchoOn:
    """From now on the caller's line echoes the bot, `echo` = (loss dB, delay s): a speakerphone turned on."""

    echo: tuple[float, float]


@dataclass
class Press:
    """The caller presses phone keys (the transport calls pressed())."""

    digits: str


@dataclass
class HangUp:
    """The caller hangs up (the transport calls stop())."""


class CallRig:
    def __init__(self, clock, settings, backends, lead_frames: int = 2, info: CallInfo | None = None,
                 noise_dbfs: float = -60.0, echo: tuple[float, float] | None = None, codec: Encoding | None = None,
                 background: np.ndarray | None = None):
        """`background`: the line's own sound (float32, looped) instead of noise at `noise_dbfs`."""
        self.clock = clock
        self.noise_dbfs = noise_dbfs
        self.echo = echo
        self.codec = codec
        self.background = background
        self.line = RecordingLine(clock, lead_frames)
        self.conversation = Conversation(self.line, backends,
                                         info or CallInfo("call-test", "test", "inbound", caller="5521999999999"),
                                         agent=settings.agent, turns=settings.turns, vad=settings.vad,
                                         language=settings.stt.language, clock=clock)
        self.said: list[tuple[float, float]] = []  # (start, end) clock times of the caller's speech

    def play(self, script: list, max_s: float = 60.0) -> str:
        """Run the call to its end on the clock's own loop; returns why it ended."""
        return self.clock.run(self.run(script, max_s))

    async def run(self, script: list, max_s: float = 60.0) -> str:
        caller = asyncio.create_task(self._caller(script))
        try:
            return await asyncio.wait_for(self.conversation.run(), max_s)
        finally:
            caller.cancel()
            await asyncio.gather(caller, return_exceptions=True)

    async def _caller(self, script: list) -> None:
        queue: list[np.ndarray] = []
        background = noise(600, self.noise_dbfs) if self.background is None else self.background
        position = 0
        next_at = self.clock.now()
        steps = iter(script)
        step = None
        step_started = next_at
        spoke_before = 0
        while True:
            if step is None:
                step = next(steps, None)
                step_started = self.clock.now()
                spoke_before = len(self.line.bot_speech_segments())
                if isinstance(step, Say):
                    self.said.append((self.clock.now(), self.clock.now() + step.audio.size / PIPELINE_RATE))
                    queue.append(step.audio)
                if isinstance(step, HangUp):
                    self.conversation.stop("remote hangup")
                    return
                if isinstance(step, Press):
                    self.conversation.pressed(step.digits)
                    step = None
                    continue
                if isinstance(step, EchoOn):
                    self.echo = step.echo
                    step = None
                    continue
            if isinstance(step, Say) and not queue:
                step = None
                continue
            if isinstance(step, Wait) and self.clock.now() - step_started >= step.seconds:
                step = None
            elif isinstance(step, UntilBotDone) and self._bot_done(step, step_started, spoke_before):
                step = None
            chunk = background[position:position + CHUNK].copy()
            position = (position + CHUNK) % (background.size - CHUNK)
            if queue:
                take = queue[0][:CHUNK]
                chunk[:take.size] += take
                queue[0] = queue[0][CHUNK:]
                if queue[0].size == 0:
                    queue.pop(0)
            if self.echo is not None:
                loss_db, delay_s = self.echo
                heard = self.line.heard_audio(self.clock.now() - CHUNK / PIPELINE_RATE - delay_s, CHUNK)
                chunk += from_int16(heard) * np.float32(10 ** (-loss_db / 20))
            if self.codec is not None:
                chunk = from_int16(decode(encode(to_int16(chunk), self.codec), self.codec))
            self.conversation.hear(chunk)
            next_at += CHUNK / PIPELINE_RATE
            await self.clock.sleep(next_at - self.clock.now())

    def _bot_done(self, step: UntilBotDone, started: float, spoke_before: int) -> bool:
        now = self.clock.now()
        if now - started > step.timeout_s:
            raise AssertionError("the bot did not answer")
        segments = self.line.bot_speech_segments()
        return len(segments) > spoke_before and now - segments[-1][1] >= step.silent_s
