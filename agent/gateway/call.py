"""A gateway call held by the conversation engine: the socket's audio and keys in, the GatewayLine out.

Keys reach the conversation as a turn of their own, unless `gateway_dtmf_actions` gives them
an action: `hangup` (the farewell, then the hangup) or `send:DIGITS` (press keys towards the
gateway, e.g. a PBX transfer code).
"""

from __future__ import annotations

import asyncio
import logging

from zapvoice.agent.clock import Clock
from zapvoice.agent.conversation import Conversation
from zapvoice.agent.gateway.codec import EdgeAudio, bytes_per_s
from zapvoice.agent.gateway.line import GatewayLine
from zapvoice.agent.gateway.protocol import Dtmf, GatewaySocket, Hangup
from zapvoice.agent.inbound_pacing import RealTimeGate
from zapvoice.agent.line import CallInfo
from zapvoice.providers.contracts import Engines

from zapvoice.settings import Settings

log = logging.getLogger(__name__)


class AgentCall:
    def __init__(self, socket: GatewaySocket, info: CallInfo, settings: Settings, engines: Engines, clock: Clock):
        self.socket = socket
        self.edge = EdgeAudio(settings.gateway.sample_rate, settings.gateway.encoding)
        self.line = GatewayLine(socket, self.edge, settings.gateway, clock)
        self.inbound = RealTimeGate(socket, bytes_per_s(self.edge.rate, self.edge.encoding),
                                    settings.gateway.max_ahead_s, clock, "gateway.max_ahead_s")
        self.conversation = Conversation(self.line, engines, info, agent=settings.agent, turns=settings.turns,
                                         vad=settings.vad, language=settings.stt.language, clock=clock)
        self.actions = dict(action.split("=", 1) for action in settings.gateway.dtmf_actions)

    async def run(self) -> str:
        """Hold the conversation until either side ends the call; why it ended."""
        listener = asyncio.create_task(self._listen())
        try:
            return await self.conversation.run()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await self.line.aclose()

    async def _listen(self) -> None:
        reason = "the gateway closed the connection"
        try:
            while (item := await self.socket.next()) is not None:
                if isinstance(item, bytes):
                    self._hear(item)
                elif isinstance(item, Dtmf):
                    self._key(item.digit)
                elif isinstance(item, Hangup):
                    reason = "the caller hung up"
                    return
                else:
                    self.socket.warn_once("incoming_call", "ignored another incoming_call during the call")
            if self.socket.hung_up_by == "server":  # the server is stopping and hung up every call
                reason = "zapvoice stopped"
        except Exception:
            log.exception("%s: cannot take the caller's input", self.socket.label)
            reason = "internal error"
        finally:
            self.conversation.stop(reason)

    def _hear(self, message: bytes) -> None:
        if not self.inbound.admit(message):
            return
        if len(message) % 2 and self.edge.encoding == "pcm16":
            self.socket.warn_once("odd", f"an audio message of {len(message)} bytes: s16le takes whole samples; "
                                         "dropped its last byte")
        samples = self.edge.from_wire(message)
        if samples.size:
            self.conversation.hear(samples)

    def _key(self, digit: str) -> None:
        action = self.actions.get(digit)
        log.info("%s: the caller pressed %s%s", self.socket.label, digit, f" ({action})" if action else "")
        if action is None:
            self.conversation.pressed(digit)
        elif action == "hangup":
            self.conversation.end(f"the caller pressed {digit}")
        else:
            self.line.press(action.removeprefix("send:"))
