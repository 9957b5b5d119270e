"""BoundedWorker: admission before work, and a Retry-After that says when the queue will have drained."""

import asyncio
import threading

import pytest
from zapvoice.providers.errors import ProviderError
from zapvoice.providers.workers import BoundedWorker


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
