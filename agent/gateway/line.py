"""A gateway call as the conversation's CallLine: the bot's speech out in paced chunks, keys, hangup."""

from __future__ import annotations

import asyncio
import math

import numpy as np
from websockets.exceptions import ConnectionClosed
from zapvoice.agent.clock import Clock
from zapvoice.agent.gateway.codec import EdgeAudio
from zapvoice.agent.gateway.protocol import SERVER_DIGITS, GatewaySocket
from zapvoice.agent.line import LineTool

from zapvoice.audio import PIPELINE_RATE
from zapvoice.settings import GatewaySettings

INTER_DIGIT_S = 0.1  # quiet between keys pressed in a row (ITU-T Q.24 asks for at least 40 ms)
MAX_DIGITS = 32
SEND_DTMF_TOOL = {"type": "function", "function": {
    "name": "send_dtmf",
    "description": "Press keys on the phone line (DTMF tones), for example to pick an option in a phone menu "
                   "or to dial an extension. Only when the task needs it.",
    "parameters": {"type": "object", "properties": {
        "digits": {"type": "string",
                   "description": "The keys to press, in order: 0-9, * and #, e.g. \"1\" or \"123#\"."}},
        "required": ["digits"]}}}


class GatewayLine:
    """The Playout sends `gateway.chunk_ms` frames at 16 kHz; each goes out as one audio message.
    Keys are pressed in the background, so speech never waits for them; `aclose()` stops them."""

    def __init__(self, socket: GatewaySocket, edge: EdgeAudio, settings: GatewaySettings, clock: Clock):
        self.socket = socket
        self.edge = edge
        self.clock = clock
        self.frame_samples = PIPELINE_RATE * settings.chunk_ms // 1000
        self.lead_frames = max(1, math.ceil(settings.lead_ms / settings.chunk_ms))
        self.tools = (LineTool(SEND_DTMF_TOOL, self._send_dtmf_tool),) if settings.dtmf_tool else ()
        self._tone_s = settings.dtmf_duration_ms / 1000
        self._keys = asyncio.Lock()  # one key sequence at a time, so two never interleave
        self._pressing: set[asyncio.Task] = set()

    async def send(self, frame: np.ndarray) -> None:
        await self.socket.audio(self.edge.to_wire(frame))

    async def hang_up(self) -> None:
        await self.socket.hang_up()

    def press(self, digits: str) -> None:
        """Press keys towards the gateway, one DTMF event per key, a tone and a short gap apart.
        ValueError (at once) if a key is not one the protocol lets us send."""
        keys = "".join(ch for ch in digits if ch not in " ,-")
        if not keys or len(keys) > MAX_DIGITS or not set(keys) <= SERVER_DIGITS:
            raise ValueError(f"cannot press {digits!r}: give 1 to {MAX_DIGITS} keys of 0-9, * and #")
        task = asyncio.create_task(self._press(keys))
        self._pressing.add(task)
        task.add_done_callback(self._pressing.discard)

    async def aclose(self) -> None:
        """Stop pressing keys (the call is over)."""
        pressing = list(self._pressing)
        for task in pressing:
            task.cancel()
        await asyncio.gather(*pressing, return_exceptions=True)

    async def _press(self, keys: str) -> None:
        async with self._keys:
            try:
                for n, key in enumerate(keys):
                    if n:
                        await self.clock.sleep(self._tone_s + INTER_DIGIT_S)
                    await self.socket.dtmf(key, round(self._tone_s * 1000))
            except ConnectionClosed:
                pass  # the gateway went away: the call is ending

    async def _send_dtmf_tool(self, arguments: dict) -> None:
        digits = arguments.get("digits")
        if not isinstance(digits, (str, int)) or isinstance(digits, bool):
            raise ValueError("send_dtmf needs 'digits', a string of keys")
        self.press(str(digits))
