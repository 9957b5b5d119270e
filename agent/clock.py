"""The time source of the conversation: pacing, idle prompts and call limits all read it.

Passing the clock in (instead of calling time.monotonic everywhere) lets tests run a call on
a virtual clock, in no more time than its computation takes; see tests/support/clock.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
