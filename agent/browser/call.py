"""A playground call held by the conversation engine: the page's microphone in, the BrowserLine out, and
the call record's events mirrored to the page (its live transcript and timings)."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from zapvoice.agent.browser.line import BrowserLine
from zapvoice.agent.browser.protocol import PlaygroundSocket
from zapvoice.agent.clock import Clock
from zapvoice.agent.conversation import Conversation
from zapvoice.agent.inbound_pacing import RealTimeGate
from zapvoice.agent.line import CallInfo
from zapvoice.providers.contracts import Engines

from zapvoice.audio import PIPELINE_RATE, from_int16
from zapvoice.settings import Settings

log = logging.getLogger(__name__)

MAX_AHEAD_S = 2.0  # how far the page's microphone may run ahead of real time, as gateway.max_ahead_s's default
TURN_FIELDS = ("user", "assistant", "interrupted", "stt_ms", "first_token_ms", "first_audio_ms", "speculative_stt")


class BrowserCall:
    def __init__(self, socket: PlaygroundSocket, info: CallInfo, settings: Settings, engines: Engines,
                 clock: Clock | None = None):
        self.socket = socket
        self.info = info
        self.line = BrowserLine(socket)
        socket.label = f"call {info.call_id}"
        self.conversation = Conversation(self.line, engines, info, agent=settings.agent, turns=settings.turns,
                                         vad=settings.vad, language=settings.stt.language, clock=clock)
        self.inbound = RealTimeGate(socket, PIPELINE_RATE * 2, MAX_AHEAD_S, self.conversation.clock,
                                    "the playground's max_ahead_s")  # s16le: 2 bytes a sample
        self.conversation.record.listeners.append(self._recorded)
        self._events: set[asyncio.Task] = set()
        self._leftover = b""

    async def run(self) -> str:
        """Hold the conversation until the page hangs up or leaves, or the bot ends the call; why it ended."""
        listener = asyncio.create_task(self._listen())
        try:
            reason = await self.conversation.run()
        finally:
            listener.cancel()
            await asyncio.gather(listener, *self._events, return_exceptions=True)
        await self.socket.event("ended", reason=reason)
        await self.socket.close()
        return reason

    def stop(self, reason: str) -> None:
        self.conversation.stop(reason)

    async def _listen(self) -> None:
        reason = "the page closed the connection"
        try:
            while (item := await self.socket.next()) is not None:
                if isinstance(item, bytes):
                    self._hear(item)
                elif item["type"] == "hangup":
                    reason = "the caller hung up"
                    return
                else:
                    log.info("call %s: ignored a %r message from the page", self.info.call_id, item["type"][:40])
            if self.socket.server_stopping:  # uvicorn closes the sockets before the lifespan ends (aclose)
                reason = "zapvoice stopped"
        except Exception:
            log.exception("call %s: cannot take the page's input", self.info.call_id)
            reason = "internal error"
        finally:
            self.conversation.stop(reason)

    def _hear(self, message: bytes) -> None:
        """s16le of any length: an odd byte waits for the next message. Audio faster than real time is dropped
        first, as the gateway drops it."""
        if not self.inbound.admit(message):
            return
        data = self._leftover + message
        usable = len(data) - len(data) % 2
        self._leftover = data[usable:]
        if usable:
            self.conversation.hear(from_int16(np.frombuffer(data[:usable], "<i2")))

    def _recorded(self, entry: dict) -> None:
        """A line of the call record: each turn goes to the page as it is written."""
        if entry.get("event") != "turn":
            return
        task = asyncio.get_running_loop().create_task(
            self.socket.event("turn", **{key: entry.get(key) for key in TURN_FIELDS}))
        self._events.add(task)
        task.add_done_callback(self._events.discard)
