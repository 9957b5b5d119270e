"""Paced playout (agent/playout.py) on a virtual clock: frame size, lead, pause, clear, position."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from zapvoice.agent.playout import Playout

from tests.support.clock import VirtualClock

FRAME = 960
FRAME_S = 0.06


def tone(seconds: float) -> np.ndarray:
    return np.full(round(seconds * 16000), 1000, np.int16)


async def start(clock: VirtualClock, lead_frames: int = 2):
    sent: list[tuple[float, np.ndarray]] = []

    async def send(frame: np.ndarray) -> None:
        sent.append((clock.now(), frame))
    playout = Playout(send, clock, FRAME, lead_frames)
    task = asyncio.create_task(playout.run())
    return playout, sent, task


def test_frames_are_paced_in_real_time_with_a_small_lead():
    clock = VirtualClock()

    async def run():
        playout, sent, task = await start(clock, lead_frames=2)
        begin = clock.now()
        playout.enqueue(tone(1.0))
        await playout.drained()
        task.cancel()
        return begin, clock.now(), sent
    begin, end, sent = clock.run(run())
    assert len(sent) == 17 and all(f.size == FRAME and f.dtype == np.int16 for _, f in sent)
    assert sent[-1][1][-1] == 0 and sent[0][1][0] == 1000  # the last frame is zero-padded
    # Two frames at once (the lead), then one per frame time: the far end never holds more than two.
    assert [at - begin for at, _ in sent] == pytest.approx([max(0, i - 1) * FRAME_S for i in range(17)])
    assert end - begin == pytest.approx(17 * FRAME_S)  # drained() waits until the far end played it all


def test_pause_stops_within_a_frame_and_clear_drops_the_rest():
    clock = VirtualClock()

    async def run():
        playout, sent, task = await start(clock)
        end = playout.enqueue(tone(2.0))
        await clock.sleep(0.5)
        playout.pause()
        count = len(sent)
        await clock.sleep(0.3)
        assert len(sent) <= count + 1
        played = playout.played_samples
        playout.clear()
        position = playout.enqueue(tone(0.12))
        await playout.drained()
        task.cancel()
        return played, end, position, sent
    played, end, position, sent = clock.run(run())
    assert end == 32000
    assert played <= position - 1920 < end  # new audio follows what was sent: the dropped audio no longer counts
    assert 0.35 * 16000 <= played <= 0.6 * 16000
    assert len(sent) < 20


def test_on_start_runs_when_the_first_frame_of_a_chunk_is_sent():
    clock = VirtualClock()

    async def run():
        playout, sent, task = await start(clock)
        started = []
        playout.enqueue(tone(0.3), on_start=lambda: started.append(len(sent)))
        playout.enqueue(tone(0.3), on_start=lambda: started.append(len(sent)))
        await playout.drained()
        task.cancel()
        return started
    assert clock.run(run()) == [1, 6]  # 0.3 s is 5 frames: the second chunk starts in the sixth
