"""Runs the end-of-turn policy (agent/end_of_turn.py) over a turn's audio on a virtual clock, as a
call would feed it: one chunk each time its audio has arrived, the model's verdicts landing between
chunks. Shared by the policy's tests and benchmarks/eval_end_of_turn.py."""

from __future__ import annotations

import asyncio

import numpy as np
from zapvoice.agent.end_of_turn import EndOfTurn
from zapvoice.agent.vad import TurnEnded, VadEvent
from zapvoice.providers.contracts import TurnModel

from tests.support.clock import VirtualClock
from zapvoice.audio import PIPELINE_RATE
from zapvoice.settings import Settings


def run_end_of_turn(clock: VirtualClock, audio: np.ndarray, settings: Settings, model: TurnModel | None,
                    chunk: int, until_end: bool = False) -> list[tuple[float, VadEvent]]:
    """(clock time, event) of everything the policy reported, the VAD's events and the turns the
    model ended; with `until_end`, feeding stops at the first turn end."""
    seen: list[tuple[float, VadEvent]] = []

    async def main() -> None:
        tasks: set[asyncio.Task] = set()

        def spawn(work):
            task = asyncio.create_task(work)
            tasks.add(task)
            return task

        policy = EndOfTurn(settings.turns, settings.vad, model, spawn, lambda e: seen.append((clock.now(), e)))
        for start in range(0, audio.size, chunk):
            await clock.sleep(chunk / PIPELINE_RATE)  # the chunk has arrived: now is the end of its audio
            seen.extend((clock.now(), event) for event in policy.process(audio[start:start + chunk]))
            if until_end and any(isinstance(event, TurnEnded) for _, event in seen):
                break
        await asyncio.gather(*tasks, return_exceptions=True)

    clock.run(main())
    return seen
