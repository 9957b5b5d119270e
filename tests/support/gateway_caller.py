"""The telephony gateway's side of a 4143 call, for tests: a WebSocket client over a real socket.

It announces the call, streams the caller's audio in 20 ms chunks (noise at -60 dBFS between
utterances) on its clock (a server's own virtual clock in this process, real time for a
subprocess), and keeps everything the server sent with its arrival time. Audio is played out as
a gateway does: each message at max(its arrival, the end of what is queued), so audio sent ahead
of real time is heard late and `max_ahead_s` shows how far ahead the server got. `echo` (loss in
dB, delay in s) puts what the caller heard back on their line, as a speakerphone or a hybrid does.

Times are call seconds since the answer, on that clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from zapvoice.agent.clock import Clock, MonotonicClock
from zapvoice.agent.gateway.codec import decode, encode

from zapvoice.audio import PIPELINE_RATE, from_int16, resample, to_int16

CHUNK_S = 0.02
AUDIBLE_DBFS = -45.0
HOLD_S = 0.3


class GatewayCaller:
    def __init__(self, url: str, rate: int = 8000, encoding: str = "pcm16", clock: Clock | None = None,
                 echo: tuple[float, float] | None = None, **connect_options):
        self.url = url
        self.echo = echo
        self.rate = rate
        self.encoding = encoding
        self.clock = clock or MonotonicClock()
        self.connect_options = connect_options
        self.events: list[tuple[float, dict]] = []  # (call seconds, event) from the server
        self.audio: list[tuple[float, int]] = []  # (call seconds, bytes) of each audio message
        self.text: list[str] = []  # text from the server that is not a JSON object
        self.closed = asyncio.Event()
        self.answered = asyncio.Event()
        self.ws = None
        self._heard = np.zeros(0, np.int16)  # the caller's playout, sample 0 = the answer
        self._play_end = 0
        self.max_ahead_s = 0.0
        self._answered_at: float | None = None
        self._queue: list[np.ndarray] = []  # speech waiting to be streamed, at `rate`
        self._spoken = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> GatewayCaller:
        self.ws = await connect(self.url, max_size=None, compression=None, **self.connect_options)
        self._tasks.append(asyncio.create_task(self._receive()))
        return self

    async def __aexit__(self, *_) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ws.close()

    # --- the caller's actions ---------------------------------------------------------------------

    async def call(self, caller_id: str = "5511988887777", did: str = "5511333334444",
                   session_id: str = "sess-0001") -> float:
        """Announce the call, wait for the answer (clock seconds it took), then stream audio."""
        sent = self.clock.now()
        await self.send({"event": "incoming_call", "callerId": caller_id, "didNumber": did, "sessionId": session_id})
        await asyncio.wait_for(self.answered.wait(), 5)
        self._tasks.append(asyncio.create_task(self._stream()))
        return self._answered_at - sent

    async def say(self, speech: np.ndarray) -> tuple[float, float]:
        """Speak float32 16 kHz audio; returns (start, end) once it has all been sent."""
        pcm = to_int16(resample(speech, PIPELINE_RATE, self.rate))
        start = self.now()
        self._spoken.clear()
        self._queue.append(pcm)
        await self._spoken.wait()
        return start, start + pcm.size / self.rate

    async def talk_over_the_reply(self, speech: np.ndarray, into_s: float = 1.5) -> tuple[float, float]:
        """Say `speech`, wait until the bot's reply has gone on for `into_s`, then say it again over the reply (a
        barge-in); returns (start, end) of the second time."""
        _, end = await self.say(speech)
        await self.until(lambda: any(start > end for start, _ in self.segments()))
        await self.clock.sleep(into_s)
        return await self.say(speech)

    async def press(self, digit: str) -> None:
        await self.send({"event": "dtmf", "digit": digit})

    async def hang_up(self) -> None:
        await self.send({"event": "hangup"})
        await self.ws.close()

    async def send(self, message: dict | str | bytes) -> None:
        await self.ws.send(json.dumps(message) if isinstance(message, dict) else message)

    # --- what the caller got -------------------------------------------------------------------

    def now(self) -> float:
        return 0.0 if self._answered_at is None else self.clock.now() - self._answered_at

    def named(self, name: str) -> list[tuple[float, dict]]:
        return [(t, e) for t, e in self.events if e.get("event") == name]

    def segments(self) -> list[tuple[float, float]]:
        """(start, end) of the bot's speech as heard: audible 20 ms frames, merged across gaps < 0.3 s."""
        n = round(self.rate * CHUNK_S)
        frames = self._heard[: self._heard.size - self._heard.size % n].astype(np.float64).reshape(-1, n) / 32768
        with np.errstate(divide="ignore"):
            levels = 10 * np.log10(np.mean(frames ** 2, axis=1))
        spans: list[list[float]] = []
        for i in np.flatnonzero(levels > AUDIBLE_DBFS):
            start, end = i * CHUNK_S, (i + 1) * CHUNK_S
            if spans and start - spans[-1][1] < HOLD_S:
                spans[-1][1] = end
            else:
                spans.append([start, end])
        return [(a, b) for a, b in spans]

    def heard_audio(self, start_s: float, end_s: float | None = None) -> np.ndarray:
        """What the caller heard between two call times, as float32 16 kHz (to transcribe it)."""
        end = self._play_end if end_s is None else round(end_s * self.rate)
        return resample(from_int16(self._heard[round(start_s * self.rate):end]), self.rate, PIPELINE_RATE)

    def _heard_at(self, start: int, n: int) -> np.ndarray:
        """`n` samples of what the caller heard from sample `start` on (silence before the answer or after)."""
        out = np.zeros(n)
        lo, hi = max(start, 0), min(start + n, self._heard.size)
        if hi > lo:
            out[lo - start:hi - start] = self._heard[lo:hi] / 32768
        return out

    def heard_until(self) -> float:
        """When the last audio received ends playing."""
        return self._play_end / self.rate

    async def until(self, check, timeout_s: float = 20.0):
        deadline = self.clock.now() + timeout_s
        while not (result := check()):
            if self.clock.now() > deadline:
                raise AssertionError(f"timed out; events {self.events}, segments {self.segments()}")
            await self.clock.sleep(0.01)
        return result

    async def reply_after(self, after: float, silent_s: float = 0.5) -> tuple[float, float]:
        """The first bot speech starting after `after` (to the 20 ms frame), once it has ended (silent_s of
        quiet, or the call closed)."""
        def replied():
            later = [seg for seg in self.segments() if seg[0] > after - CHUNK_S]
            if later and (self.closed.is_set() or self.now() - later[0][1] >= silent_s):
                return later[0]
            return None
        return await self.until(replied)

    # --- the socket ----------------------------------------------------------------------------------

    async def _receive(self) -> None:
        try:
            async for message in self.ws:
                at = self.now()
                if isinstance(message, bytes):
                    self._play(message, at)
                    continue
                try:
                    event = json.loads(message)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    self.text.append(message)
                    continue
                self.events.append((at, event))
                if event.get("event") == "answer":
                    self._answered_at = self.clock.now()
                    self.answered.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    def _play(self, message: bytes, at: float) -> None:
        self.audio.append((at, len(message)))
        pcm = decode(message, self.encoding)
        start = max(round(at * self.rate), self._play_end)
        end = start + pcm.size
        if end > self._heard.size:
            self._heard = np.concatenate([self._heard, np.zeros(max(end - self._heard.size, self.rate * 10), np.int16)])
        self._heard[start:end] = pcm
        self._play_end = end
        self.max_ahead_s = max(self.max_ahead_s, end / self.rate - at)

    async def _stream(self) -> None:
        n = round(self.rate * CHUNK_S)
        rng = np.random.default_rng(0)
        sent = 0
        with contextlib.suppress(ConnectionClosed):
            while not self.closed.is_set():
                chunk = rng.normal(0, 10 ** (-60 / 20), n)
                if self.echo is not None:
                    chunk += self._heard_at(sent * n - round(self.echo[1] * self.rate), n) * 10 ** (-self.echo[0] / 20)
                if self._queue:
                    speech = self._queue[0][:n]
                    chunk[: speech.size] += speech / 32768
                    self._queue[0] = self._queue[0][n:]
                    if self._queue[0].size == 0:
                        self._queue.pop(0)
                        self._spoken.set()
                await self.ws.send(encode(to_int16(chunk), self.encoding))
                sent += 1
                await self.clock.sleep(self._answered_at + sent * CHUNK_S - self.clock.now())
