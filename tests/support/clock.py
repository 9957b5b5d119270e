"""A clock that runs `speed` times faster than real time, so a minute of call takes seconds."""

from __future__ import annotations

import asyncio
import time


class FastClock:
    def __init__(self, speed: float):
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)
