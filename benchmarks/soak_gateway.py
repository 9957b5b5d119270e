"""Memory and file descriptors over many calls (issue 10): does anything grow per call?

    python benchmarks/soak_gateway.py [--calls 200] [--concurrent 20] [--turns 3]

`zapvoice gateway` runs as a user runs it, on the test models (the scripted Whisper and the sine
voices, built on the spot) and the fake OpenAI upstream of the tests in its `echo` mode. Callers
(tests/support/gateway_caller.py, real time over loopback) come in waves of `--concurrent`: each
waits for the greeting, speaks `--turns` turns and waits for each reply, then hangs up. After every
wave the gateway's RSS, peak RSS, open fds and threads are read from /proc; a leak shows as a
column that keeps rising wave after wave instead of levelling off after the first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.hostile_upstream_gateway import ZAPVOICE, Child, fake_llm, free_port, memory_mb, model_args
from benchmarks.publish import provenance, publish, start  # noqa: E402
from tests.support.gateway_caller import GatewayCaller  # noqa: E402
from tests.support.speech import speak  # noqa: E402


def process_counts(pid: int) -> tuple[int, int]:
    """Open file descriptors and threads of `pid`."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return fds, threads


async def one_call(url: str, utterance, turns: int, session: str) -> int:
    """A call of `turns` turns; the number of replies heard."""
    replies = 0
    async with GatewayCaller(url) as phone:
        await phone.call(session_id=session)
        await phone.reply_after(0.0)  # the greeting
        for _ in range(turns):
            _, end = await phone.say(utterance)
            await phone.reply_after(end)
            replies += 1
        await phone.hang_up()
    return replies


async def wave(url: str, utterance, turns: int, first: int, count: int, failures: Counter) -> int:
    """One wave of `count` calls at once; the replies heard, and each call that failed counted by its error."""
    done = await asyncio.gather(*(one_call(url, utterance, turns, f"soak-{first + n}") for n in range(count)),
                                return_exceptions=True)
    failures.update(type(result).__name__ for result in done if isinstance(result, BaseException))
    return sum(result for result in done if isinstance(result, int))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; do not update BENCHMARKS.md")
    args = parser.parse_args()
    run = start()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    models = model_args(work)
    fake_port, port = free_port(), free_port()
    fake_url, url = f"http://127.0.0.1:{fake_port}", f"ws://127.0.0.1:{port}"
    fake = fake_llm(fake_port, work / "fake-llm.log")
    gateway = Child([ZAPVOICE, "gateway", "--gateway-port", str(port), "--llm-url", f"{fake_url}/v1",
                     "--llm-model", "echo", "-c", f"agent.record_dir={work / 'calls'}",
                     "-c", f"agent.max_calls={args.concurrent}", "-c", "agent.idle_prompt_s=3600",
                     "-c", f"stt.queue={args.concurrent}", "-c", f"tts.queue={args.concurrent}", *models],
                    work / "gateway.log", f"http://127.0.0.1:{port}/health")
    utterance = speak("Bom dia, eu queria marcar uma consulta.")
    rows = ["| calls done | replies heard | wave s | RSS MB | peak RSS MB | open fds | threads |",
            "|---|---|---|---|---|---|---|"]

    def sample(calls: int, replies: int, seconds: float) -> None:
        memory = memory_mb(gateway.pid)
        fds, threads = process_counts(gateway.pid)
        rows.append(f"| {calls} | {replies} | {seconds:.1f} | {memory['VmRSS']:.0f} | {memory['VmHWM']:.0f} | "
                    f"{fds} | {threads} |")
        print(rows[-1], file=sys.stderr, flush=True)

    try:
        sample(0, 0, 0.0)
        calls = replies = 0
        failures: Counter = Counter()
        while calls < args.calls:
            count = min(args.concurrent, args.calls - calls)
            began = time.monotonic()
            replies += asyncio.run(wave(url, utterance, args.turns, calls, count, failures))
            calls += count
            sample(calls, replies, time.monotonic() - began)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        busy = (work / "gateway.log").read_text().count("transcription failed")
    finally:
        gateway.stop()
        fake.stop()
    expected = args.calls * args.turns
    failed = ", ".join(f"{n} × {name}" for name, n in failures.items()) or "none"
    summary = [f"{args.calls} calls in waves of {args.concurrent}, {args.turns} turns each (STT and TTS queues as "
               f"deep as a wave): {replies} of {expected} replies heard; calls that failed on the caller's side: "
               f"{failed}; failed transcriptions in the gateway's log: {busy}; /health after the soak: {health}."]
    publish("soak_gateway", [*provenance(run), "", *summary, "", *rows], write=not args.no_write)


if __name__ == "__main__":
    main()
