"""Sends the bot's speech to the line in fixed frames, paced in real time.

The far end queues whatever it is sent and plays it at its own pace; it cannot take audio
back. A bot that sent a whole reply at once could not stop talking when interrupted, so
frames go out on the clock, at most `lead_frames` ahead of what the far end has played:
enough to ride out a late wake-up of the event loop, little enough that a barge-in is heard
within `lead_frames` frames.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np
from zapvoice.agent.clock import Clock

from zapvoice.audio import PIPELINE_RATE

Send = Callable[[np.ndarray], Awaitable[None]]
Sent = Callable[[np.ndarray, float], None]


class Playout:
    """One call's outgoing audio. `run()` is the sending task; the rest is called by the conversation."""

    def __init__(self, send: Send, clock: Clock, frame_samples: int, lead_frames: int, on_sent: Sent | None = None):
        """`on_sent(frame, start_s)`: told of every frame sent and the clock time the far end starts playing
        it (the echo canceller's reference)."""
        self._send = send
        self._on_sent = on_sent
        self._clock = clock
        self.frame_samples = frame_samples
        self.frame_s = frame_samples / PIPELINE_RATE
        self._lead_s = (lead_frames - 1) * self.frame_s
        self._pending: deque[tuple[np.ndarray, Callable[[], None] | None]] = deque()
        self._offset = 0  # samples of _pending[0] already sent
        self._ends_at = 0.0  # when the far end will have played everything sent so far
        self._sent_samples = 0  # speech samples sent (padding excluded)
        self._queued_samples = 0  # speech samples sent or pending
        self._paused = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def enqueue(self, pcm: np.ndarray, on_start: Callable[[], None] | None = None) -> int:
        """Queue int16 speech; `on_start` runs when its first frame has been sent. Returns the
        position of its end in the stream, to compare with `played_samples`."""
        if pcm.size:
            self._pending.append((pcm, on_start))
            self._queued_samples += pcm.size
            self._idle.clear()
            self._wake.set()
        return self._queued_samples

    def pause(self) -> None:
        """Stop sending at the next frame (the caller may be interrupting); keep what is queued."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake.set()

    def clear(self) -> None:
        """Drop everything not yet sent (the caller interrupted) and resume."""
        self._pending.clear()
        self._offset = 0
        self._queued_samples = self._sent_samples
        self._paused = False
        self._update_idle()

    @property
    def talking(self) -> bool:
        """Speech is queued here or still playing at the far end."""
        return bool(self._pending) or self._clock.now() < self._ends_at

    @property
    def played_samples(self) -> int:
        """Position in the stream the far end has played up to (sent minus what it still has queued)."""
        queued = max(0.0, self._ends_at - self._clock.now()) * PIPELINE_RATE
        return max(0, self._sent_samples - round(queued))

    async def drained(self) -> None:
        """Wait until everything queued has been sent and played."""
        await self._idle.wait()
        await self._clock.sleep(self._ends_at - self._clock.now())

    async def run(self) -> None:
        while True:
            if not self._pending or self._paused:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._clock.sleep(self._ends_at - self._lead_s - self._clock.now())
            if not self._pending or self._paused:
                continue
            frame, speech, callbacks = self._take_frame()
            await self._send(frame)
            start = max(self._ends_at, self._clock.now())
            self._ends_at = start + self.frame_s
            if self._on_sent is not None:
                self._on_sent(frame, start)
            self._sent_samples += speech
            for callback in callbacks:
                callback()
            self._update_idle()

    def _take_frame(self) -> tuple[np.ndarray, int, list[Callable[[], None]]]:
        """The next frame of queued speech, zero-padded when the queue runs short."""
        frame = np.zeros(self.frame_samples, np.int16)
        filled = 0
        callbacks = []
        while filled < self.frame_samples and self._pending:
            pcm, on_start = self._pending[0]
            if self._offset == 0 and on_start is not None:
                callbacks.append(on_start)
            take = min(self.frame_samples - filled, pcm.size - self._offset)
            frame[filled:filled + take] = pcm[self._offset:self._offset + take]
            filled += take
            self._offset += take
            if self._offset == pcm.size:
                self._pending.popleft()
                self._offset = 0
        return frame, filled, callbacks

    def _update_idle(self) -> None:
        if self._pending:
            self._idle.clear()
        else:
            self._idle.set()
