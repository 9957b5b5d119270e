"""Benchmark of scale: how many busy calls one machine carries on real models, with the models in the agent's
process and in 1 or 2 provider processes that the agent reaches over HTTP.

    python benchmarks/bench_scaling.py            # the full run, about 9 minutes
    python benchmarks/bench_scaling.py --quick    # a smoke run, about 3 minutes
    ... --calls 1,4,8 --window 20 --budget-s 2.5  # other call counts, window, latency budget
    ... --no-write                                # print only (otherwise the report replaces the section
                                                  # between <!-- bench_scaling:begin --> and
                                                  # <!-- bench_scaling:end --> of BENCHMARKS.md)

Each set-up runs as a user runs it, `zapvoice` commands in child processes, on the trained Whisper base
(multilingual, int8) and Piper voice en_US-joe-medium of tests/real-models.txt, with the fake LLM of the tests
(`pace-300-30`: it echoes the transcript, the first word after 300 ms, then 30 words a second) reached directly:

- local: `zapvoice gateway` with both models in its own process;
- 1 provider, 2 providers: `zapvoice gateway --stt-url --tts-url` (it loads no model) against that many
  `zapvoice serve` processes behind a round-robin TCP balancer (a child of this script, `--run-balancer`,
  standing in for Swarm's routing mesh: each connection goes to the next replica). The single provider sits
  behind the same balancer, so both carry the same extra hop.

The TTS cache is off (tts.cache_bytes 0): the callers repeat their sentences, and every reply must be
synthesized as a new one would be. Every other setting is a default but the idle prompt and the call time
limit (off) and agent.max_calls (1000).

The callers are N 4143 WebSocket clients in this process (bench_gateway's Caller: s16le 8000 Hz, 20 ms chunks,
a playout buffer), each saying the 10 real English recordings of tests/support/real_models.py in turn, from
its own place in the list, each as soon as the bot's previous reply has finished playing (0.8 s of quiet):
busy calls, far harder than real ones, where the caller listens for longer than they talk.

- Reply latency: the end of the caller's speech (its last 20 ms above -40 dBFS) to the bot's first audio
  message, the 600 ms of end-of-turn silence included: what a caller waits. A turn not answered within 15 s
  is lost. Turns whose speech ended inside the window count; those under way when it closes are awaited.
- A set-up carries N calls when no turn of the window was lost and the p95 reply latency is within the budget
  (--budget-s, 2.5 s): the "carries" line is the most calls tried that did.
- CPU %: user + system time over the window of the gateway, of each provider (an even split says the balancer
  spreads the work), of the balancer and of this process (the callers); 100 % = one core.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if "--run-balancer" not in sys.argv:  # the balancer's process needs none of this
    from benchmarks.bench_agent import Child, FakeLLM, Recording, cpu_seconds, real_recordings, scratch, stats
    from benchmarks.bench_gateway import Caller, calls
    from benchmarks.bench_providers import free_port, percentile, wait_ready
    from benchmarks.publish import provenance, publish, start
    from tests.support.real_models import joe_voice, whisper_base_dir

ZAPVOICE = str(Path(sys.executable).parent / "zapvoice")
ANSWER_TIMEOUT_S = 15.0
QUIET_S = 0.8
LLM_MODEL = "pace-300-30"
SETUPS = ("local", "1 provider", "2 providers")


# --- the balancer's process ---------------------------------------------------------------------------

async def _balance(port: int, backends: list[int]) -> None:
    """`--run-balancer PORT,B1,B2...`: each connection to 127.0.0.1:PORT piped to the next backend in turn."""
    turn = itertools.cycle(backends)

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", next(turn))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(connection, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# --- the set-ups (child processes) ----------------------------------------------------------------------

TOKEN = "bench-scaling-token"
COMMON = ["--no-auto-download", "-c", "tts.cache_bytes=0", "-c", "service.log_level=warning"]


class SetUp:
    """One set-up's processes, started in order; the gateway's WebSocket URL."""

    def __init__(self, name: str, work: Path, llm_url: str):
        self.name, self.children = name, {}
        # The run's own data directory: serve keeps no token, and nothing else, in the user's.
        self.common = [*COMMON, "-c", f"service.data_dir={work}"]
        models = ["--whisper-model", str(whisper_base_dir()), "--voice", str(joe_voice())]
        gateway_port = free_port()
        self.url = f"ws://127.0.0.1:{gateway_port}"
        try:
            if name == "local":
                engines = models
            else:
                backends = [self._serve(f"provider {n}", work, models, llm_url) for n in range(1, int(name[0]) + 1)]
                balancer = free_port()
                self._start("balancer", [sys.executable, __file__, "--run-balancer",
                                         ",".join(map(str, [balancer, *backends]))],
                            work / f"balancer-{balancer}.log", f"http://127.0.0.1:{balancer}/health")
                base = f"http://127.0.0.1:{balancer}"
                engines = ["--stt-url", f"{base}/stt", "--tts-url", f"{base}/tts", "-c", "tts.voices=en_US-joe-medium",
                           "-c", f"agent.provider_token={TOKEN}"]
            self._start("gateway", [ZAPVOICE, "gateway", "--gateway-port", str(gateway_port), *engines, "--llm-url", llm_url,
                         "--llm-model", LLM_MODEL, *self.common, "-c", "agent.record_dir=", "-c", "agent.idle_prompt_s=3600",
                         "-c", "agent.max_call_s=3600", "-c", "agent.max_calls=1000"],
                        work / f"gateway-{gateway_port}.log", f"http://127.0.0.1:{gateway_port}/health")
        except BaseException:
            self.stop()
            raise

    def _serve(self, role: str, work: Path, models: list[str], llm_url: str) -> int:
        port = free_port()
        self._start(role, [ZAPVOICE, "serve", "--port", str(port), *models, "--llm-url", llm_url, *self.common,
                           "-c", f"service.token={TOKEN}"],
                    work / f"serve-{port}.log", f"http://127.0.0.1:{port}/ready")
        return port

    def _start(self, role: str, args: list[str], log: Path, ready_url: str) -> None:
        child = Child(args, log)
        self.children[role] = child
        try:
            wait_ready(ready_url, child.process, timeout=300)
        except RuntimeError:
            print(child.tail(), file=sys.stderr)
            raise

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each process, by role: gateway, balancer, provider 1, provider 2."""
        return {role: child.cpu() for role, child in self.children.items()}

    def stop(self) -> None:
        for child in reversed(self.children.values()):
            child.stop()


# --- the callers (this process) ------------------------------------------------------------------------

@dataclass
class Turn:
    end: float  # time.monotonic() of the end of the caller's speech
    latency_s: float | None  # None: not answered within ANSWER_TIMEOUT_S


@dataclass
class Run:
    calls: int
    turns: list[Turn] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # each process by role, % of one core
    callers_cpu: float = 0.0

    def cpu_cells(self) -> str:
        """Gateway, providers (each), balancer: CPU %."""
        providers = " + ".join(f"{v:.0f}" for role, v in self.cpu.items() if role.startswith("provider")) or "-"
        return f"{self.cpu['gateway']:.0f} | {providers} | {self.cpu.get('balancer', 0.0):.0f}"

    def window_turns(self, start: float, end: float) -> None:
        self.turns = [turn for turn in self.turns if start <= turn.end <= end]

    @property
    def lost(self) -> int:
        return sum(turn.latency_s is None for turn in self.turns)

    def latencies_ms(self) -> list[float | None]:
        return [None if turn.latency_s is None else turn.latency_s * 1000 for turn in self.turns]

    def carried(self, budget_s: float) -> bool:
        answered = [ms for ms in self.latencies_ms() if ms is not None]
        return bool(answered) and not self.lost and percentile(answered, 95) <= budget_s * 1000


async def converse(caller: Caller, recordings: list[Recording], first: int, closing: asyncio.Event,
                   turns: list[Turn]) -> None:
    """Say one recording after another, each once the bot's reply has played, until `closing` (the window's end)
    is set; the turn under way then is still awaited (it counts if its speech ended inside the window)."""
    await caller.quiet(QUIET_S)  # the greeting
    for n in itertools.count(first):
        if closing.is_set():
            return
        utterance = recordings[n % len(recordings)].utterance
        start_s, spoken = await caller.speak(utterance.pcm)
        await spoken
        end_s = start_s + utterance.last_s
        try:
            await caller.until(lambda: caller.arrivals(end_s), ANSWER_TIMEOUT_S)
            turns.append(Turn(caller.at(end_s), caller.arrivals(end_s)[0] - end_s))
        except AssertionError:
            turns.append(Turn(caller.at(end_s), None))
        if closing.is_set():
            return
        await caller.quiet(QUIET_S)


def measure(setup: SetUp, count: int, window_s: float, recordings: list[Recording]) -> Run:
    run, settle_s = Run(count), 5.0

    async def scenario() -> None:
        closing = asyncio.Event()
        async with calls(setup.url, count) as callers:
            talking = [asyncio.create_task(converse(caller, recordings, random.randrange(len(recordings)), closing,
                                                    run.turns)) for caller in callers]
            await asyncio.sleep(settle_s)
            started, cpu0, own0 = time.monotonic(), setup.cpu(), cpu_seconds(os.getpid())
            await asyncio.sleep(window_s)
            ended, cpu1, own1 = time.monotonic(), setup.cpu(), cpu_seconds(os.getpid())
            closing.set()  # the turns under way finish (answered or lost); no new one starts
            await asyncio.wait_for(asyncio.gather(*talking), ANSWER_TIMEOUT_S + 60)
        run.window_turns(started, ended)
        wall = ended - started
        run.cpu = {role: (cpu1[role] - cpu0[role]) / wall * 100 for role in cpu0}
        run.callers_cpu = (own1 - own0) / wall * 100

    asyncio.run(scenario())
    return run


# --- the report ------------------------------------------------------------------------------------------

def bench(work: Path, counts: list[int], window_s: float, budget_s: float) -> list[str]:
    recordings = real_recordings()
    llm = FakeLLM(work)
    rows = ["| set-up | calls | turns | lost | reply p50 ms | p95 | max | gateway CPU % | providers' CPU % | "
            "balancer CPU % | callers' CPU % |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    carries = []
    try:
        for name in SETUPS:
            setup = SetUp(name, work, llm.url)
            try:
                runs = []
                for count in counts:
                    run = measure(setup, count, window_s, recordings)
                    runs.append(run)
                    rows.append(f"| {name} | {count} | {len(run.turns)} | {run.lost} | "
                                f"{' | '.join(stats(run.latencies_ms(), 50, 95, 100))} | {run.cpu_cells()} | "
                                f"{run.callers_cpu:.0f} |")
                    print(rows[-1], file=sys.stderr)
            finally:
                setup.stop()
            most = max((run.calls for run in runs if run.carried(budget_s)), default=0)
            carries.append(f"| {name} | {most if most else 'none'}{'+' if most == max(counts) else ''} |")
    finally:
        llm.stop()
    return [*rows, "", f"Calls carried (no lost turn, p95 reply latency ≤ {budget_s:g} s; `+`: the most tried, "
            "so the limit is higher):", "", "| set-up | calls carried |", "|---|---|", *carries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 and 2 calls, 10 s windows (about 3 minutes)")
    parser.add_argument("--calls", help="call counts to try (default 1,4,8,12; --quick: 1,2)")
    parser.add_argument("--window", type=float, help="seconds of each measurement (default 25; --quick: 10)")
    parser.add_argument("--budget-s", type=float, default=2.5, help="p95 reply latency a carried call may reach")
    parser.add_argument("--no-write", action="store_true", help="print the report only, leave BENCHMARKS.md alone")
    parser.add_argument("--run-balancer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_balancer:
        port, *backends = (int(p) for p in args.run_balancer.split(","))
        asyncio.run(_balance(port, backends))
        return
    counts = [int(n) for n in (args.calls or ("1,2" if args.quick else "1,4,8,12")).split(",")]
    window_s = args.window or (10.0 if args.quick else 25.0)
    started = start()
    random.seed(0)
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    with scratch(work):
        table = bench(work, counts, window_s, args.budget_s)
    report = [f"The gateway, the providers, the balancer, the fake LLM and this script (the callers) share the "
              f"{os.cpu_count()} cores. Busy calls: each caller speaks again 0.8 s after the bot's reply has "
              f"played. {window_s:g} s windows. Reply latency: end of speech to the bot's first audio, the 600 ms "
              "end-of-turn silence included.", "", *table]
    publish("bench_scaling", ["## Scaling: calls per machine, local models vs 1 and 2 provider processes", "",
                              *provenance(started), "", *report], write=not args.no_write)


if __name__ == "__main__":
    main()
