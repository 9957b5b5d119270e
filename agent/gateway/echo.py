"""`zapvoice gateway --echo`: the protocol's own example flow, with no model, to check a gateway.

The protocol's "Call Flow" (docs/gateway-4143.md §5) answers at 5 s, sends DTMF 1 at 7 s, echoes
the caller's audio and hangs up at 17 s. Here: answered at once (by the server), DTMF 1 two seconds later, every
audio message sent straight back as it arrives (so it is paced as the caller sends it, in
any encoding), and the hangup gateway.echo_hangup_s after the answer.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.exceptions import ConnectionClosed
from zapvoice.agent.clock import Clock
from zapvoice.agent.gateway.codec import bytes_per_s
from zapvoice.agent.gateway.protocol import Dtmf, GatewaySocket, Hangup
from zapvoice.agent.inbound_pacing import RealTimeGate

from zapvoice.settings import GatewaySettings

log = logging.getLogger(__name__)

DTMF_AFTER_S = 2.0  # the spec's flow: answer at 5 s, DTMF at 7 s
DTMF_DIGIT = "1"


class EchoCall:
    def __init__(self, socket: GatewaySocket, settings: GatewaySettings, clock: Clock):
        self.socket = socket
        self.settings = settings
        self.clock = clock
        self.inbound = RealTimeGate(socket, bytes_per_s(settings.sample_rate, settings.encoding),
                                    settings.max_ahead_s, clock, "gateway.max_ahead_s")

    async def run(self) -> str:
        """Echo until the caller hangs up or the time is up; why it ended (the server sends the hangup)."""
        tasks = {asyncio.create_task(self._echo()), asyncio.create_task(self._timeline())}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return done.pop().result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _echo(self) -> str:
        try:
            while (item := await self.socket.next()) is not None:
                if isinstance(item, bytes):
                    if self.inbound.admit(item):
                        await self.socket.audio(item)
                elif isinstance(item, Dtmf):
                    log.info("%s: the caller pressed %s", self.socket.label, item.digit)
                elif isinstance(item, Hangup):
                    return "the caller hung up"
        except ConnectionClosed:
            pass
        return "the gateway closed the connection"

    async def _timeline(self) -> str:
        hang_up_s = self.settings.echo_hangup_s
        if hang_up_s > DTMF_AFTER_S:
            await self.clock.sleep(DTMF_AFTER_S)
            await self.socket.dtmf(DTMF_DIGIT, self.settings.dtmf_duration_ms)
            await self.clock.sleep(hang_up_s - DTMF_AFTER_S)
        else:
            await self.clock.sleep(hang_up_s)
        return f"the echo ran its {hang_up_s:g} s"
