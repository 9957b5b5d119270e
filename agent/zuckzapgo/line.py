"""A call's media WebSocket (docs/zuckzapgo.md §5) as the conversation's CallLine: the bot's speech out, hangup.
The socket carries s16le, 16 kHz, mono, 1920-byte frames both ways; call.py reads the caller's."""

from __future__ import annotations

import numpy as np
from websockets.asyncio.client import ClientConnection
from zapvoice.agent.zuckzapgo.protocol import CallNotFound, ZuckZapGoAPI

FRAME_SAMPLES = 960  # 60 ms at 16 kHz = 1920 bytes: the engine zero-pads anything shorter


class MediaLine:
    frame_samples = FRAME_SAMPLES
    tools = ()

    def __init__(self, ws: ClientConnection, api: ZuckZapGoAPI, call_id: str, lead_frames: int):
        self.ws = ws
        self.api = api
        self.call_id = call_id
        self.lead_frames = lead_frames
        self.hung_up = False

    async def send(self, frame: np.ndarray) -> None:
        await self.ws.send(frame.astype("<i2", copy=False).tobytes())

    async def hang_up(self) -> None:
        """POST /call/hangup, then close the socket (docs/zuckzapgo.md §2)."""
        self.hung_up = True
        try:
            await self.api.hang_up(self.call_id)
        except CallNotFound:
            pass  # the call had already ended
        finally:
            await self.ws.close()
