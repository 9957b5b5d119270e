"""Benchmark of the voice agent behind the 4143 telephony gateway: reply overhead, barge-in and capacity.

    python benchmarks/bench_gateway.py            # the full run, about 6 minutes
    python benchmarks/bench_gateway.py --quick    # a smoke run, about 2 minutes
    ... --no-write                                # print only (otherwise the report replaces the section
                                                  # between <!-- bench_gateway:begin --> and
                                                  # <!-- bench_gateway:end --> of BENCHMARKS.md)

The gateway server (`GatewayServer` + `AgentCall`, wired as `zapvoice gateway` wires them) runs in a
child process (`--run-agent`, bench_agent's AgentProcess and its event-loop and GC timings) on the
instant providers of bench_agent (FakeSTT/FakeChat/FakeTTS with zero delays, a 440 Hz tone for
speech). The callers are WebSocket clients in this process (tests/support/gateway_caller.py: s16le
8000 Hz, a 20 ms chunk every 20 ms, -60 dBFS noise between utterances, and a playout buffer where
each audio message plays at max(its arrival, the end of what is queued)). Times are this process's
time.monotonic(), the agent's clock too.

- Reply overhead: the end of the caller's speech (the send time of the chunk that carries the
  utterance's start + the end of its last 20 ms above -40 dBFS) to the arrival of the bot's first
  audio message after it, minus vad_end_silence_ms (600). A chunk is sent at the start of the 20 ms
  it covers (as bench_agent's fake engine does with 60 ms), so the VAD can see the end of speech up
  to 20 ms early. The agent's record (`first_audio_ms` - 600) is shown next to it.
- Barge-in: caller onset (first chunk + first 20 ms above -40 dBFS) to the end of the bot's speech as
  heard through the playout buffer (audible 20 ms frames, gaps < 0.3 s merged), each long reply
  interrupted 1.5 s after its first message.
- Capacity: N callers stream audio (speech with pauses) over a long greeting that keeps playing
  (barge_in off). Jitter: |interval between consecutive bot audio messages at the client - 20 ms|.
  Underruns: messages that arrived after the client's playout buffer had run dry (an audible gap),
  with the silence they left. Send lag: how late each caller sent its chunks against its 20 ms
  schedule (the load generator's own lateness). CPU%: user + system time over the window (100 % =
  one core). Settings differ from the defaults only by agent_max_calls 1000, idle prompts off, the
  call time limit off, and, for capacity, barge_in off and the long greeting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zapvoice.agent.gateway.commands import serving  # noqa: E402

from benchmarks.bench_agent import (  # noqa: E402
    END_SILENCE_S,
    INTERRUPTION,
    LONG_REPLY,
    REPLY,
    TTS_S_PER_CHAR,
    UTTERANCES,
    AgentProcess,
    Utterance,
    Window,
    _watch_loop,
    cpu_seconds,
    instant_backends,
    record_turns,
    run_agent_process,
    scratch,
    stats,
    watched_until_sigterm,
)
from tests.support.gateway_caller import CHUNK_S, GatewayCaller  # noqa: E402
from zapvoice.audio import PIPELINE_RATE  # noqa: E402
from zapvoice.settings import Settings, nest  # noqa: E402

if "--run-agent" not in sys.argv:  # as bench_agent: the agent's process must not import torch
    from benchmarks.bench_providers import clip, free_port, percentile
    from benchmarks.publish import provenance, publish, start

RATE = 8000


# --- the gateway's process ------------------------------------------------------------------------------

async def _gateway(config: dict) -> None:
    """`--run-agent`: the gateway server with the agent on the instant providers, until SIGTERM."""
    settings = Settings(_env_file=None, **nest(config["agents"][0]))
    async with serving(settings, instant_backends(config)):
        await watched_until_sigterm(config)


class Gateway:
    """The gateway server in its child process; its URL and call records."""

    def __init__(self, work: Path, name: str, reply: str = REPLY, **overrides):
        port = free_port()
        self.url = f"ws://127.0.0.1:{port}"
        self.records = work / f"records-{name}"
        values = dict(gateway_port=port, agent_record_dir=str(self.records), agent_idle_prompt_s=3600.0,
                      agent_max_call_s=3600.0, agent_max_calls=1000, auto_download=False) | overrides
        self.agent = AgentProcess(work, "instant", [values], reply=reply, script=__file__)

    def stop(self) -> None:
        self.agent.stop()


# --- the callers (this process) ---------------------------------------------------------------------

class Caller(GatewayCaller):
    """A GatewayCaller that keeps when it sent each audio chunk, in time.monotonic()."""

    def __init__(self, url: str):
        super().__init__(url, rate=RATE)
        self.sent_at: list[float] = []

    async def __aenter__(self) -> Caller:
        await super().__aenter__()
        send = self.ws.send

        async def timed(message, *args, **kwargs):
            if isinstance(message, bytes):
                self.sent_at.append(time.monotonic())
            await send(message, *args, **kwargs)
        self.ws.send = timed
        return self

    def at(self, call_s: float) -> float:
        """time.monotonic() of a call time."""
        return self._answered_at + call_s

    async def speak(self, pcm: bytes) -> tuple[float, asyncio.Task]:
        """Start saying s16le 16 kHz speech: (call seconds of the chunk that carries its start, the task that
        ends when it has all been sent)."""
        queued = time.monotonic()
        task = asyncio.create_task(self.say(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768))
        while not self.sent_at or self.sent_at[-1] <= queued:
            await asyncio.sleep(0.005)
        return next(t for t in self.sent_at if t > queued) - self._answered_at, task

    def arrivals(self, after: float = -math.inf) -> list[float]:
        """Call seconds of the bot's audio messages received after `after`."""
        return [at for at, _ in self.audio if at > after]

    async def quiet(self, quiet_s: float = 0.8, timeout: float = 60) -> None:
        """Until the bot has sent nothing for `quiet_s` and everything received has played."""
        await self.until(lambda: self.now() - max(self.arrivals() or [0.0]) >= quiet_s
                         and self.heard_until() <= self.now(), timeout)

    def send_lags_ms(self, start: float, end: float) -> list[float]:
        """How late each chunk sent between two time.monotonic() instants left, against its schedule."""
        return [(t - self._answered_at - k * CHUNK_S) * 1000 for k, t in enumerate(self.sent_at) if start <= t <= end]

    def playout(self, start: float, end: float) -> tuple[list[float], float]:
        """Of the messages arriving between two time.monotonic() instants: the silence (ms) before each that found
        the playout buffer empty, and how far (ms) the buffer's end got ahead of real time."""
        gaps, ahead, play_end = [], 0.0, None
        for at, size in self.audio:
            inside = start <= self.at(at) <= end
            if play_end is not None and at > play_end and inside:
                gaps.append((at - play_end) * 1000)
            play_end = max(at, play_end if play_end is not None else at) + size / 2 / RATE
            ahead = max(ahead, (play_end - at) * 1000 if inside else 0.0)
        return gaps, ahead


async def talk(caller: Caller, speech: np.ndarray, first: int) -> None:
    """Say `speech` (float32 16 kHz) over and over from its second `first`, a second at a time: resampling a long
    clip at once for every caller would stall them all (and the bot's audio would pile up in their buffers)."""
    pieces = [speech[i:i + PIPELINE_RATE] for i in range(0, speech.size, PIPELINE_RATE)]
    for n in itertools.count(first):
        await caller.say(pieces[n % len(pieces)])


@contextlib.asynccontextmanager
async def calls(url: str, count: int = 1):
    """`count` answered calls, hung up at the end of the block."""
    async with contextlib.AsyncExitStack() as stack:
        callers = [await stack.enter_async_context(Caller(url)) for _ in range(count)]
        await asyncio.gather(*(c.call(caller_id=f"55219{n:08d}", session_id=f"bench-{n}")
                               for n, c in enumerate(callers)))
        try:
            yield callers
        finally:
            await asyncio.gather(*(c.hang_up() for c in callers), return_exceptions=True)


# --- 1. reply overhead -------------------------------------------------------------------------------------

def bench_reply_overhead(work: Path, count: int, turns: int, utterances: list[Utterance]) -> list[str]:
    gateway = Gateway(work, "overhead")

    async def scenario() -> list[float | None]:
        overhead = []
        for _ in range(count):  # one call at a time: the overhead without load
            async with calls(gateway.url) as (caller,):
                await caller.quiet()  # the greeting
                for n in range(turns):
                    utterance = utterances[n % len(utterances)]
                    start, spoken = await caller.speak(utterance.pcm)
                    await spoken
                    end = start + utterance.last_s
                    try:
                        await caller.until(lambda: caller.arrivals(end), 10)
                        overhead.append((caller.arrivals(end)[0] - end - END_SILENCE_S) * 1000)
                        await caller.quiet()
                    except AssertionError:
                        print("warning: a turn was not answered", file=sys.stderr)
                        overhead.append(None)
        return overhead

    try:
        overhead = asyncio.run(scenario())
    finally:
        gateway.stop()
    recorded = [t["first_audio_ms"] - END_SILENCE_S * 1000 for t in record_turns(gateway.records)]
    return ["| figure | p50 | p95 | max |", "|---|---|---|---|",
            "| **reply overhead** (client: first bot message - end of speech - 600 ms) | "
            f"**{stats(overhead, 50)[0]}** | {' | '.join(stats(overhead, 95, 100))} |",
            f"| agent record: first_audio_ms - 600 | {' | '.join(stats(recorded, 50, 95, 100))} |", "",
            f"{sum(v is not None for v in overhead)}/{len(overhead)} turns answered ({count} calls x {turns} turns, "
            "one call at a time)."]


# --- 2. barge-in -------------------------------------------------------------------------------------------

def bench_barge_in(work: Path, count: int, per_call: int, utterances: list[Utterance],
                   interruption: Utterance) -> list[str]:
    gateway = Gateway(work, "barge-in", reply=LONG_REPLY)

    async def scenario() -> tuple[list[float | None], float]:
        cuts, ahead = [], 0.0
        for _ in range(count):
            async with calls(gateway.url) as (caller,):
                await caller.quiet()
                start, spoken = await caller.speak(utterances[0].pcm)
                speech_end, onsets, said = start + utterances[0].last_s, [], [spoken]
                for _ in range(per_call):  # interrupt each long reply 1.5 s in; its answer is the next long reply
                    talking_since = (await caller.until(lambda: caller.arrivals(speech_end), 20))[0]
                    await caller.until(lambda: caller.now() >= talking_since + 1.5)
                    start, spoken = await caller.speak(interruption.pcm)
                    said.append(spoken)
                    onsets.append(start + interruption.first_s)
                    speech_end = start + interruption.last_s
                await asyncio.gather(*said)
                await asyncio.sleep(1.5)
                segments = caller.segments()
                for onset in onsets:
                    cut = next((seg for seg in segments if seg[0] <= onset < seg[1]), None)
                    cuts.append(None if cut is None else (cut[1] - onset) * 1000)
                ahead = max(ahead, caller.max_ahead_s)
        return cuts, ahead

    try:
        cuts, ahead = asyncio.run(scenario())
    finally:
        gateway.stop()
    interrupted = sum(t["interrupted"] for t in record_turns(gateway.records))
    return ["| figure | p50 | p95 | max |", "|---|---|---|---|",
            f"| **caller onset -> end of the bot's heard speech** | **{stats(cuts, 50)[0]}** | "
            f"{' | '.join(stats(cuts, 95, 100))} |", "",
            f"{sum(c is not None for c in cuts)}/{len(cuts)} interruptions measured ({count} calls), {interrupted} "
            f"replies recorded as interrupted; audio at most {ahead * 1000:.0f} ms ahead of real time at the client."]


# --- 3. capacity -------------------------------------------------------------------------------------------

def bench_listening(work: Path, counts: list[int], window_s: float, speech: np.ndarray) -> list[str]:
    """N calls at once; every caller talks (speech with pauses) through a long greeting that keeps playing."""
    settle_s = 3.0
    greeting = " ".join(["Olá! Você ligou para a Clínica Sorriso, como posso ajudar hoje?"] *
                        math.ceil((window_s + settle_s + 40) / (63 * TTS_S_PER_CHAR)))
    rows = ["| calls | jitter p50 ms | jitter p99 ms | jitter max ms | underruns in window (per 1000 messages) | "
            "silence of underruns ms | max ahead ms (whole call) | agent loop lag p99 ms | max (CPU) | longest GC ms | "
            "agent CPU % | "
            "callers' send lag p99 ms | max | callers' loop lag max ms | callers' CPU % |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for count in counts:
        gateway = Gateway(work, f"listen-{count}", agent_greeting=greeting, barge_in=False)

        async def scenario() -> tuple[Window, list[Caller], list[float]]:
            own_lags: list[tuple[float, float, float]] = []
            watcher = asyncio.create_task(_watch_loop(own_lags))
            try:
                async with calls(gateway.url, count) as callers:
                    talking = [asyncio.create_task(talk(caller, speech, random.randrange(speech.size // PIPELINE_RATE)))
                               for caller in callers]  # each caller at its own place in the speech
                    await asyncio.sleep(settle_s)
                    started, agent0, own0 = time.monotonic(), gateway.agent.cpu(), cpu_seconds(os.getpid())
                    await asyncio.sleep(window_s)
                    ended, agent1, own1 = time.monotonic(), gateway.agent.cpu(), cpu_seconds(os.getpid())
                    for task in talking:
                        task.cancel()
            finally:
                watcher.cancel()
            wall = ended - started
            window = Window((agent1 - agent0) / wall * 100, (own1 - own0) / wall * 100, started, ended, {},
                            (started, ended))
            return window, callers, [lag * 1000 for at, lag, _ in own_lags if started <= at <= ended]

        try:
            window, callers, own_lags = asyncio.run(scenario())
        except Exception:
            print(gateway.agent.tail(), file=sys.stderr)
            raise
        finally:
            gateway.stop()
        jitter, gaps, sends, messages, ahead = [], [], [], 0, 0.0
        for caller in callers:
            inside = [caller.at(t) for t in caller.arrivals() if window.start <= caller.at(t) <= window.end]
            messages += len(inside)
            jitter += [abs(b - a - CHUNK_S) * 1000 for a, b in zip(inside, inside[1:])]
            silences, most = caller.playout(window.start, window.end)
            gaps, ahead = gaps + silences, max(ahead, most)
            sends += caller.send_lags_ms(window.start, window.end)
        cells = [*(f"{percentile(jitter, q):.1f}" for q in (50, 99, 100)),
                 f"{len(gaps)} ({len(gaps) / max(messages, 1) * 1000:.2f})", f"{sum(gaps):.0f}",
                 f"{ahead:.0f} ({max(c.max_ahead_s for c in callers) * 1000:.0f})", window.lag_cells(gateway.agent),
                 f"{window.agent_cpu:.0f}", f"{percentile(sends, 99):.1f}", f"{max(sends):.0f}",
                 f"{max(own_lags, default=math.nan):.0f}", f"{window.fake_cpu:.0f}"]
        rows.append(f"| {count} | {' | '.join(cells)} |")
        print(rows[-1], file=sys.stderr)
    return rows


# --- the report ---------------------------------------------------------------------------------------------

SECTIONS = ("overhead", "barge-in", "listen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every measurement (about 2 minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--listen-calls", help="call counts of the capacity run (default 10,25,50,100,150,200)")
    parser.add_argument("--no-write", action="store_true", help="print the report only, leave BENCHMARKS.md alone")
    parser.add_argument("--run-agent", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_agent:
        run_agent_process(json.loads(args.run_agent), _gateway)
        return
    only, quick = set(args.only.split(",")), args.quick
    if only - set(SECTIONS):
        parser.error(f"unknown --only {', '.join(sorted(only - set(SECTIONS)))}; choose from {', '.join(SECTIONS)}")
    gc.collect()  # this process imported torch (bench_providers): a full collection walking it would stall
    gc.freeze()  # every caller for ~100 ms
    listen = [int(n) for n in (args.listen_calls or ("50" if quick else "10,25,50,100,150,200")).split(",")]
    started = start()
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    random.seed(0)
    utterances = [Utterance.of(text) for text in UTTERANCES]
    report = ["The gateway "
              "(agent) and this script (the callers) are two processes sharing these cores. s16le 8000 Hz, 20 ms "
              "chunks both ways, gateway_lead_ms 60. Times in ms."]
    with scratch(work):
        if "overhead" in only:
            count, turns = (1, 5) if quick else (4, 5)
            report += ["", "### Gateway reply overhead, instant providers "
                       "(end of speech + 600 ms -> first bot message)", "",
                       *bench_reply_overhead(work, count, turns, utterances)]
        if "barge-in" in only:
            count, per_call = (1, 3) if quick else (2, 5)
            report += ["", "### Gateway barge-in, instant providers, long reply interrupted 1.5 s in", "",
                       *bench_barge_in(work, count, per_call, utterances, Utterance.of(INTERRUPTION))]
        if "listen" in only:
            window = 6.0 if quick else 20.0
            report += ["", f"### Gateway capacity: calls that listen while the bot talks ({window:.0f} s window)", "",
                       *bench_listening(work, listen, window, clip(20.0)), "",
                       "Jitter: |interval between consecutive bot audio messages at the client - 20 ms|. Underruns: "
                       "messages that found the client's playout buffer empty (an audible gap in the bot's speech), "
                       "and the total silence they left. Max ahead: how far the end of the client's playout buffer got "
                       "ahead of the arrivals in the window (in brackets: over the whole call, start-up included). "
                       "Loop lag: how late the agent's event loop woke a 10 ms sleep (CPU: its thread's CPU "
                       "time meanwhile); GC: its longest collection. Send lag: how late the callers (this process) "
                       "sent their 20 ms chunks."]
    publish("bench_gateway", ["## The 4143 gateway (`zapvoice gateway`)", "", *provenance(started), "", *report],
            write=not args.no_write)


if __name__ == "__main__":
    main()
