"""A virtual clock for tests of calls run in this process.

VirtualClock is the clock of an event loop whose time passes only when nothing can run: when every
task waits on a timer, no I/O is ready and no executor job (an engine, a DNS lookup) is running,
the loop jumps to the next deadline instead of sleeping. A minute of call then takes as long as
its computation, and the load on the machine cannot shift one event against another, so what a
test sees is the same on every run. Computation takes no call time.

What runs on it must live on that loop: peers served with tests.support.servers.ServedHere, not
in a thread or another process, whose work the loop cannot see (time would jump while they
worked). Sockets between tasks of the loop are sound when they set TCP_NODELAY (asyncio does for
the sockets it creates; see ServedHere for one it is given): loopback then delivers a write before
send() returns, so the poll before each jump sees it.

Tests whose peers are other processes (the CLI tests) or real models at their real speed (the
real tier) keep real time: zapvoice.agent.clock.MonotonicClock.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualClock:
    """Call seconds from 0, on the loop that `run()` drives."""

    def __init__(self) -> None:
        self._now = 0.0

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, _VirtualTimeLoop) or loop.clock is not self:
            raise RuntimeError("a VirtualClock only passes on its own loop: start the test with clock.run()")
        await asyncio.sleep(max(0.0, seconds))

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """asyncio.run on a loop that keeps this clock's time (asyncio.sleep and timeouts included)."""
        with asyncio.Runner(loop_factory=lambda: _VirtualTimeLoop(self)) as runner:
            return runner.run(main)

    def _advance(self, seconds: float) -> None:
        self._now += seconds


class _JumpingSelector(selectors.DefaultSelector):
    """Polls for I/O; where the loop would block until its next timer, moves the clock there instead."""

    def __init__(self, clock: VirtualClock):
        super().__init__()
        self._clock = clock
        self.jobs = 0  # executor jobs running: their end wakes the loop, and no time passes meanwhile

    def select(self, timeout: float | None = None):
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None or self.jobs:  # only I/O or a job's end (call_soon_threadsafe) can go on
            return super().select(None)
        self._clock._advance(timeout)
        return []


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock):
        self._jumping = _JumpingSelector(clock)
        super().__init__(self._jumping)
        self.clock = clock

    def time(self) -> float:
        return self.clock.now()

    def run_in_executor(self, executor, func, *args):
        future = super().run_in_executor(executor, func, *args)
        self._jumping.jobs += 1
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _future: asyncio.Future) -> None:
        self._jumping.jobs -= 1
