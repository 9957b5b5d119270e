"""Runs blocking model calls (Whisper, Piper) in threads, a few at a time, with a bounded wait.

Both engines release the GIL while they compute, so threads give real parallelism up to the
configured concurrency. Admission comes first: beyond `queue` waiting jobs a caller gets 503 at
once, before any of its work is done, with a Retry-After of how long the queue takes to drain
at the recent job time, instead of a pile-up that makes every caller late.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from zapvoice.providers.errors import ProviderError
from zapvoice.providers.metrics import METRICS

T = TypeVar("T")


class BoundedWorker:
    def __init__(self, name: str, concurrency: int, queue: int, clock: Callable[[], float] = time.perf_counter):
        self.name = name
        self.concurrency = concurrency
        self.capacity = concurrency + queue
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"zapvoice-{name}")
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._mean_job_s: float | None = None  # moving average of finished jobs, for Retry-After
        gone = weakref.ref(self)  # the gauge reads the newest worker of this name; it does not keep it alive
        METRICS.queue_depth.labels(name).set_function(lambda: worker.in_flight if (worker := gone()) else 0)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def refuse_if_full(self) -> None:
        """503 now if a job could not be admitted now: lets a caller refuse before reading a large request."""
        with self._lock:
            self._refuse_if_full()

    async def run(self, job: Callable[[], T]) -> T:
        with self._lock:
            self._refuse_if_full()
            self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._timed, job)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _refuse_if_full(self) -> None:
        if self._in_flight >= self.capacity:
            METRICS.rejections.labels(self.name).inc()
            raise ProviderError(
                503, f"the {self.name} engine is busy ({self._in_flight} jobs in flight); retry later",
                headers={"Retry-After": str(self._retry_after_s())},
            )

    def _retry_after_s(self) -> int:
        """Queued jobs × mean job time / concurrency, rounded up, at least 1 s (also before any job finished)."""
        queued = max(0, self._in_flight - self.concurrency)
        return max(1, math.ceil(queued * (self._mean_job_s or 0.0) / self.concurrency))

    def _timed(self, job: Callable[[], T]) -> T:
        started = self._clock()
        try:
            return job()
        finally:
            took = self._clock() - started
            with self._lock:
                self._mean_job_s = took if self._mean_job_s is None else 0.8 * self._mean_job_s + 0.2 * took

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
