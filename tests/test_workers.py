"""BoundedWorker: admission before work, and a Retry-After that says when the queue will have drained.
BatchingWorker: what waited together runs together."""

import asyncio
import threading

import pytest
from zapvoice.providers.errors import ProviderError
from zapvoice.providers.workers import BatchingWorker, BoundedWorker


class SteppedClock:
    """Time that moves only when a job says how long it took."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def take(self, seconds: float) -> None:
        self.now += seconds


async def refusal_while_full(worker: BoundedWorker, started: list[str]) -> ProviderError:
    release = threading.Event()
    holders = [asyncio.ensure_future(worker.run(release.wait)) for _ in range(worker.capacity)]
    await asyncio.sleep(0)  # one turn of the loop: every holder is admitted
    assert worker.in_flight == worker.capacity
    with pytest.raises(ProviderError):
        worker.refuse_if_full()  # what /stt asks before it reads the body
    with pytest.raises(ProviderError) as refused:
        await worker.run(lambda: started.append("refused job"))
    release.set()
    await asyncio.gather(*holders)
    worker.refuse_if_full()
    return refused.value


@pytest.mark.parametrize(("concurrency", "queue", "job_s", "retry_after"), [
    (1, 8, 0.15, 2),   # 8 queued × 0.15 s = 1.2 s -> 2 (the old estimate: 9 × 1 s)
    (2, 3, 3.0, 5),    # 3 queued × 3 s / 2 workers = 4.5 s -> 5
    (1, 0, 3.0, 1),    # nothing queued: at least 1 s
])
def test_retry_after_is_the_queue_drain_time(concurrency, queue, job_s, retry_after):
    clock = SteppedClock()
    worker = BoundedWorker("stt", concurrency, queue, clock=clock)
    started: list[str] = []

    async def scenario() -> ProviderError:
        await worker.run(lambda: clock.take(job_s))
        return await refusal_while_full(worker, started)

    refused = asyncio.run(scenario())
    assert refused.status == 503 and "busy" in refused.message
    assert refused.headers == {"Retry-After": str(retry_after)}
    assert started == [], "a refused job never runs"
    worker.shutdown()


def test_retry_after_before_any_job_finished_is_one_second():
    worker = BoundedWorker("tts", 1, 4)
    refused = asyncio.run(refusal_while_full(worker, []))
    assert refused.headers == {"Retry-After": "1"}
    worker.shutdown()


class HeldBatches:
    """A batch function that records each batch and holds the first until released."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: list[str]) -> list[str | BaseException]:
        self.batches.append(items)
        self.first_started.set()
        self.release.wait()
        return [ValueError(f"bad {item}") if item.startswith("bad") else item.upper() for item in items]


async def held_then_together(worker: BatchingWorker, held: HeldBatches, first: str, waiting: list[str]):
    """`first` runs alone; `waiting` arrive while it runs. Returns each caller's result or exception."""
    lone = asyncio.ensure_future(worker.run_batched(first))
    await asyncio.to_thread(held.first_started.wait)
    queued = [asyncio.ensure_future(worker.run_batched(item)) for item in waiting]
    await asyncio.sleep(0)  # one turn of the loop: every waiting item is queued
    held.release.set()
    return await asyncio.gather(lone, *queued, return_exceptions=True)


def test_items_that_wait_together_run_as_one_batch_and_a_lone_one_at_once():
    held = HeldBatches()
    worker = BatchingWorker("stt", 1, 8, max_batch=8, run_batch=held)
    results = asyncio.run(held_then_together(worker, held, "a", ["b", "c", "d"]))
    assert results == ["A", "B", "C", "D"]
    assert held.batches == [["a"], ["b", "c", "d"]]
    worker.shutdown()


def test_batches_are_capped_and_a_bad_item_fails_only_its_caller():
    held = HeldBatches()
    worker = BatchingWorker("stt", 1, 8, max_batch=2, run_batch=held)
    results = asyncio.run(held_then_together(worker, held, "a", ["b", "bad c", "d"]))
    assert results[:2] == ["A", "B"] and results[3] == "D"
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad bad c"
    assert held.batches == [["a"], ["b", "bad c"], ["d"]]
    worker.shutdown()


def test_an_item_whose_caller_gave_up_while_waiting_never_runs():
    held = HeldBatches()
    worker = BatchingWorker("stt", 1, 8, max_batch=8, run_batch=held)

    async def scenario():
        lone = asyncio.ensure_future(worker.run_batched("a"))
        await asyncio.to_thread(held.first_started.wait)
        dropped = asyncio.ensure_future(worker.run_batched("speculative"))
        kept = asyncio.ensure_future(worker.run_batched("final"))
        await asyncio.sleep(0)
        dropped.cancel()
        held.release.set()
        return await asyncio.gather(lone, kept), worker.in_flight

    assert asyncio.run(scenario()) == (["A", "FINAL"], 0)
    assert held.batches == [["a"], ["final"]]
    worker.shutdown()


def test_retry_after_counts_a_batch_as_the_jobs_it_did():
    """Each utterance costs 0.25 s, alone or in a batch: three in one 0.75 s pass are three 0.25 s jobs of the
    drain estimate, not one job of 0.75 s."""
    clock = SteppedClock()
    release = threading.Event()
    release.set()

    def decode(items: list[str]) -> list[str | BaseException]:
        release.wait()
        clock.take(0.25 * len(items))
        return items

    worker = BatchingWorker("stt", 1, 8, max_batch=4, run_batch=decode, clock=clock)

    async def scenario() -> ProviderError:
        await asyncio.gather(*(worker.run_batched(item) for item in "abcd"))  # "a" alone, then "bcd" together
        release.clear()
        holders = [asyncio.ensure_future(worker.run_batched(item)) for item in "efghijklm"]
        await asyncio.sleep(0)
        with pytest.raises(ProviderError) as refused:
            await worker.run_batched("n")
        release.set()
        await asyncio.gather(*holders)
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.headers == {"Retry-After": "2"}  # 8 queued × 0.25 s; counted per batch it said 3
    worker.shutdown()


def test_a_batching_worker_admits_like_a_bounded_one():
    held = HeldBatches()
    worker = BatchingWorker("stt", 1, 1, max_batch=8, run_batch=held)

    async def scenario():
        holders = [asyncio.ensure_future(worker.run_batched(item)) for item in "ab"]
        await asyncio.sleep(0)
        with pytest.raises(ProviderError) as refused:
            await worker.run_batched("c")
        held.release.set()
        return refused.value, await asyncio.gather(*holders)

    refused, results = asyncio.run(scenario())
    assert refused.status == 503 and results == ["A", "B"]
    assert ["c"] not in held.batches
    worker.shutdown()
