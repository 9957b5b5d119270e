"""A ZuckZapGo call held by the conversation engine: the media socket's audio in, the MediaLine out.

The call is also what the status poll knows of it (listed, answered, gone): ZuckZapGo says a
call ended only by no longer listing it, even while its media socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from zapvoice.agent.clock import Clock
from zapvoice.agent.conversation import Conversation
from zapvoice.agent.line import CallInfo
from zapvoice.agent.zuckzapgo.line import MediaLine
from zapvoice.agent.zuckzapgo.protocol import (
    END_PHASES,
    CallNotFound,
    EventsUnavailable,
    ZuckZapGoAPI,
    ZuckZapGoError,
)
from zapvoice.providers.contracts import Engines

from zapvoice.audio import from_int16
from zapvoice.settings import Settings

log = logging.getLogger(__name__)

REMOTE_HANGUP = "remote hangup"


class ZuckZapGoCall:
    def __init__(self, call_id: str, settings: Settings, engines: Engines, api: ZuckZapGoAPI, clock: Clock,
                 listed: bool = False):
        self.call_id = call_id
        self.settings = settings
        self.engines = engines
        self.api = api
        self.clock = clock
        self.conversation: Conversation | None = None
        self.listed = listed  # seen in /call/status at least once
        self.missed_polls = 0
        self.gone = False  # vanished from /call/status: hung up at the far end
        self.answered = asyncio.Event()

    def vanished(self) -> None:
        self.gone = True
        self.answered.set()
        if self.conversation is not None:
            self.conversation.stop(REMOTE_HANGUP)

    async def converse(self, info: CallInfo) -> str:
        """Open the media socket and hold the conversation on it; hang up if the call outlives it."""
        line = None
        reason = "cancelled"
        try:
            async with connect(self.api.stream_url(self.call_id), max_size=2**20, open_timeout=10,
                               logger=self.api.logger("websockets.client")) as ws:
                line = MediaLine(ws, self.api, self.call_id, self.settings.zuckzapgo.lead_frames)
                settings = self.settings
                conversation = self.conversation = Conversation(
                    line, self.engines, info, agent=settings.agent, turns=settings.turns, vad=settings.vad,
                    language=settings.stt.language, clock=self.clock)
                watcher = asyncio.create_task(self._watch_phases(line))
                try:
                    if info.direction == "outbound" and not await self._answered():
                        reason = REMOTE_HANGUP if self.gone else "not answered"
                        return reason
                    if self.gone:
                        return REMOTE_HANGUP
                    listener = asyncio.create_task(_listen(ws, conversation))
                    listener.add_done_callback(lambda _: conversation.stop("media socket closed"))
                    try:
                        reason = await conversation.run()
                    finally:
                        listener.cancel()
                        await asyncio.gather(listener, return_exceptions=True)
                    return reason
                finally:
                    watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = "media socket failed"
            log.warning("call %s: cannot open the media socket: %s", self.call_id,
                        self.api.redact(f"{type(exc).__name__}: {exc}"))
            return reason
        finally:
            if not self.gone and not (line is not None and line.hung_up):
                await hang_up_quietly(self.api, self.call_id)

    async def _watch_phases(self, line: MediaLine) -> None:
        """Newer ZuckZapGo streams the call's phases (GET /call/{id}/events): an end phase is a remote hangup
        known at once rather than at the next poll, and `active` an answer. Without the stream (404, not SSE)
        or when it breaks, the status poll alone tells, as before (docs/zuckzapgo.md §4)."""
        try:
            async with contextlib.aclosing(self.api.call_phases(self.call_id)) as phases:  # closes the stream now
                async for phase in phases:
                    if phase == "active":
                        self.answered.set()
                    elif phase in END_PHASES:
                        if not (line.hung_up or self.gone):  # our own hangup ends the call too
                            log.info("call %s ended at the far end (event: %s)", self.call_id, phase)
                            self.vanished()
                        return
        except EventsUnavailable as exc:
            log.debug("call %s: no call events (%s); the status poll tells its end", self.call_id, exc.message)
        except ZuckZapGoError as exc:
            log.info("call %s: %s; the status poll tells its end", self.call_id, exc.message)

    async def _answered(self) -> bool:
        """Wait until the callee picks up (the status says active), hangs up, or never answers."""
        try:
            await asyncio.wait_for(self.answered.wait(), self.settings.zuckzapgo.ring_timeout_s)
        except TimeoutError:
            log.info("call %s: no answer in %g s", self.call_id, self.settings.zuckzapgo.ring_timeout_s)
            return False
        return not self.gone


async def _listen(ws: ClientConnection, conversation: Conversation) -> None:
    """Feed the caller's audio to the conversation until the socket closes."""
    leftover = b""
    try:
        async for message in ws:
            if isinstance(message, str):
                continue
            data = leftover + message
            usable = len(data) - len(data) % 2
            leftover = data[usable:]
            if usable:
                conversation.hear(from_int16(np.frombuffer(data[:usable], "<i2")))
    except ConnectionClosed:
        pass
    except Exception:
        log.exception("call %s: cannot take the caller's audio", conversation.info.call_id)


async def hang_up_quietly(api: ZuckZapGoAPI, call_id: str) -> None:
    try:
        await api.hang_up(call_id)
    except CallNotFound:
        pass  # it has already ended
    except ZuckZapGoError as exc:
        log.warning("cannot hang up call %s: %s", call_id, exc.message)
