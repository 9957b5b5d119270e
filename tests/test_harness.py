"""The test harness itself: the virtual clock the in-memory calls run on, and the isolation from the
developer's machine that every test relies on."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.clock import VirtualClock
from tests.support.servers import ServedHere

REPOSITORY = Path(__file__).resolve().parents[1]


def test_virtual_time_jumps_to_each_deadline_in_order():
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    async def main() -> float:
        await asyncio.gather(sleeper("late", 3600.0), sleeper("early", 0.06), sleeper("timeout", 10.0))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 5.0)  # asyncio's own timers keep the same time
        return clock.now()

    assert clock.run(main()) == pytest.approx(3605.0)  # on a real clock this would take an hour
    assert woke == [("early", pytest.approx(0.06)), ("timeout", pytest.approx(10.0)), ("late", pytest.approx(3600.0))]


def test_virtual_time_stands_still_while_code_runs_or_a_thread_answers():
    clock = VirtualClock()

    async def main() -> tuple[float, float]:
        sum(range(2_000_000))  # real work, no waiting: no call time passes
        after_work = clock.now()
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        threading.Timer(0.05, loop.call_soon_threadsafe, (answer.set_result, None)).start()
        await answer  # no timer is due: the loop waits for the thread instead of jumping
        return after_work, clock.now()

    assert clock.run(main()) == (0.0, 0.0)


def test_a_peer_served_on_the_loop_answers_every_request_without_call_time_passing():
    """Each request on one kept-alive connection is answered at once: were a small write held back
    (Nagle waiting for a delayed ACK), the clock would jump to the client's timeout instead."""
    clock = VirtualClock()

    async def ok(_request) -> JSONResponse:
        return JSONResponse({"ok": True})
    peer = ServedHere(Starlette(routes=[Route("/", ok)]))

    async def main() -> float:
        async with peer.serving(), httpx.AsyncClient(base_url=peer.url, timeout=5) as client:
            started = clock.now()
            for _ in range(3):
                assert (await client.get("/")).json() == {"ok": True}
            return clock.now() - started

    assert clock.run(main()) == 0.0


def test_a_virtual_clock_refuses_to_sleep_on_an_ordinary_loop():
    with pytest.raises(RuntimeError, match="clock.run"):
        asyncio.run(VirtualClock().sleep(1.0))


def test_tests_run_outside_the_repository_so_its_dotenv_is_not_read():
    assert Path.cwd() != REPOSITORY and not Path(".env").exists()
