"""Runs blocking model calls (Whisper, Piper) in threads, a few at a time, with a bounded wait.

Both engines release the GIL while they compute, so threads give real parallelism up to the
configured concurrency. Admission comes first: beyond `queue` waiting jobs a caller gets 503 at
once, before any of its work is done, with a Retry-After of how long the queue takes to drain
at the recent job time, instead of a pile-up that makes every caller late.

`BatchingWorker` adds batches: items that wait together run as one call of a batch function
(several utterances in one Whisper pass). There is no timer: an item that finds a thread free runs
at once, alone, so batching only ever takes what would otherwise have queued.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from zapvoice.providers.errors import ProviderError
from zapvoice.providers.metrics import METRICS

T = TypeVar("T")
Item = TypeVar("Item")


class BoundedWorker:
    def __init__(self, name: str, concurrency: int, queue: int, clock: Callable[[], float] = time.perf_counter):
        self.name = name
        self.concurrency = concurrency
        self.capacity = concurrency + queue
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"zapvoice-{name}")
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._mean_job_s: float | None = None  # moving average of a job's time (a batch's share), for Retry-After
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
        self._admit()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._timed, job)
        finally:
            self._leave()

    def _admit(self) -> None:
        with self._lock:
            self._refuse_if_full()
            self._in_flight += 1

    def _leave(self) -> None:
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

    def _timed(self, job: Callable[[], T], jobs: int = 1) -> T:
        """Runs `job`, which does the work of `jobs` queued jobs (a batch), and learns each one's share of its time."""
        started = self._clock()
        try:
            return job()
        finally:
            took = (self._clock() - started) / jobs
            with self._lock:
                self._mean_job_s = took if self._mean_job_s is None else 0.8 * self._mean_job_s + 0.2 * took

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class BatchingWorker(BoundedWorker, Generic[Item, T]):
    """A BoundedWorker whose `run_batched` items are handed to `run_batch` together when they wait together,
    up to `max_batch` at a time. `run_batch` returns one result per item, or the exception that item failed
    with, so a bad item fails only its own caller. An item whose caller gave up before its batch started
    (a cancelled speculative transcription) is never run. Plain `run` jobs share the same threads."""

    def __init__(self, name: str, concurrency: int, queue: int, max_batch: int,
                 run_batch: Callable[[list[Item]], list[T | BaseException]],
                 clock: Callable[[], float] = time.perf_counter):
        super().__init__(name, concurrency, queue, clock)
        self.max_batch = max_batch
        self._run_batch = run_batch
        self._waiting: deque[tuple[Item, asyncio.Future[T]]] = deque()
        self._free_lanes = concurrency  # batches under way, counted on the event loop only
        self._batches: set[asyncio.Task] = set()

    async def run_batched(self, item: Item) -> T:
        self._admit()
        try:
            answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            self._waiting.append((item, answer))
            self._start_batches()
            return await answer
        finally:
            self._leave()

    def _start_batches(self) -> None:
        while self._free_lanes and self._waiting:
            batch: list[tuple[Item, asyncio.Future[T]]] = []
            while self._waiting and len(batch) < self.max_batch:
                item, answer = self._waiting.popleft()
                if not answer.cancelled():
                    batch.append((item, answer))
            if batch:
                self._free_lanes -= 1
                task = asyncio.get_running_loop().create_task(self._run(batch))
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[T]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._timed, lambda: self._run_batch(items), len(items))
        except asyncio.CancelledError:
            for _, answer in batch:
                answer.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets it
            results = [exc] * len(batch)
        finally:
            self._free_lanes += 1
        for (_, answer), result in zip(batch, results, strict=True):
            if answer.done():
                continue
            if isinstance(result, BaseException):
                answer.set_exception(result)
            else:
                answer.set_result(result)
        self._start_batches()
