"""Runs blocking model calls (Whisper, Piper) in threads, a few at a time, with a bounded wait.

Both engines release the GIL while they compute, so threads give real parallelism up to the
configured concurrency. Beyond `queue` waiting jobs a caller gets 503 with a Retry-After
estimated from recent job times, instead of a pile-up that makes every caller late.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from providers.errors import ProviderError

T = TypeVar("T")


class BoundedWorker:
    def __init__(self, name: str, concurrency: int, queue: int):
        self.name = name
        self.concurrency = concurrency
        self.capacity = concurrency + queue
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"zapvoice-{name}")
        self._lock = threading.Lock()
        self._in_flight = 0
        self._mean_job_s = 1.0  # moving average, for Retry-After

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self, job: Callable[[], T]) -> T:
        with self._lock:
            if self._in_flight >= self.capacity:
                retry = max(1, math.ceil(self._mean_job_s * self._in_flight / self.concurrency))
                raise ProviderError(
                    503, f"the {self.name} engine is busy ({self._in_flight} jobs in flight); retry later",
                    headers={"Retry-After": str(retry)},
                )
            self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._timed, job)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _timed(self, job: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return job()
        finally:
            self._mean_job_s = 0.8 * self._mean_job_s + 0.2 * (time.perf_counter() - started)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
