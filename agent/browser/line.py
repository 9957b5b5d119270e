"""A playground call as the conversation's CallLine: the bot's speech goes to the page as s16le frames."""

from __future__ import annotations

import numpy as np
from zapvoice.agent.browser.protocol import FRAME_BYTES, PlaygroundSocket

FRAME_SAMPLES = FRAME_BYTES // 2
LEAD_FRAMES = 3  # the page's jitter buffer holds ~100 ms; 180 ms ahead rides out a late wake-up


class BrowserLine:
    frame_samples = FRAME_SAMPLES
    lead_frames = LEAD_FRAMES
    tools = ()  # a browser has no phone keys to press

    def __init__(self, socket: PlaygroundSocket):
        self.socket = socket

    async def send(self, frame: np.ndarray) -> None:
        await self.socket.audio(frame.astype("<i2", copy=False).tobytes())

    async def hang_up(self) -> None:
        """Nothing yet: the bot ended the call, and BrowserCall.run() tells the page why before it closes."""
