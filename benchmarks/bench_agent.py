"""Benchmark of the voice agent on ZuckZapGo calls: reply overhead, barge-in and capacity on this machine.

    python benchmarks/bench_agent.py            # the full run, about 20 minutes
    python benchmarks/bench_agent.py --quick    # a smoke run, about 3 minutes
    ... --no-write                              # print only (otherwise the report replaces the section
                                                # between <!-- bench_agent:begin --> and <!-- bench_agent:end -->
                                                # of BENCHMARKS.md)

Every measurement runs the real `ZuckZapGoAgent` (status poller, REST answer, one media WebSocket
and one `Conversation` per call) in a child process of this script (`--run-agent`, started with a
small JSON config), against the fake ZuckZapGo engine of the tests (tests/support/fake_zuckzapgo.py)
in another process, in real time (frame_s = 0.06). This process plays the callers through the
fake's harness API and reads its reports; the figures come from the engine's side of the socket:

- the end of the caller's speech is the `say` start + the end of the last 20 ms of the utterance
  above -40 dBFS; the bot's first frame is the first client message the engine received after it.
  Reply overhead = first frame - end of speech - vad_end_silence_ms (600 ms). The agent's own
  record (`first_audio_ms` - 600: from its end-of-turn decision to the first frame sent) is shown
  next to it.
- The fake sends caller frame k at the *start* of the 60 ms it covers (a real engine can only
  send it once captured), so the VAD sees the end of speech up to 60 ms early. "VAD floor" is
  the overhead an infinitely fast agent would show with these utterances, computed by running
  the same EnergyVAD offline over the same frames; overhead - floor is what the agent adds.
- Barge-in: caller onset (say start + first 20 ms above -40 dBFS) to the end of the fake's heard
  segment (audible frames it played, gaps < 0.3 s merged) the onset falls into.
- Capacity: jitter is |interval between consecutive client messages at the engine - 60 ms| over
  a measurement window; what a caller hears is the engine running dry inside the bot's speech
  (`underrun_ticks`), which with zuckzapgo_lead_frames = 2 only happens to a send more than about
  a frame late. CPU% is the process's user + system time over the window (100 % = one core). The
  agent's process also times its own event loop (how late a 10 ms sleep wakes, and the CPU its
  thread had meanwhile) and its garbage collections, to tell the agent's lateness from the fake's
  or the OS's. It must not import torch (bench_providers' Whisper builder does): every full
  collection would then walk 140k more objects, a 120-140 ms stall that underruns every call.

Caveats: the fake engine and this process share the same 2 cores with the agent (their CPU is
shown too), so high-N figures include the fake's own lateness. "Instant providers" are the test
fakes (FakeSTT/FakeChat/FakeTTS with zero delays: a 440 Hz tone for speech); the instant TTS has a
cache like Piper's, so a long greeting is synthesized once. Real models (section "models"): the
trained Whisper base (multilingual, int8, language auto-detected as by default) and Piper voice
en_US-joe-medium of tests/real-models.txt, in the agent's process, hearing the 10 real English
recordings of tests/support/real_models.py as the callers' speech; the LLM is still the fake one,
`pace-300-30`, echoing the transcript ("Você disse: <transcript>", first word after 300 ms, then
30 words/s). Benchmark settings differ from the defaults only where noted: agent_max_calls 1000
(the default, 20, declines more), idle prompts off, listen-only calls with barge_in off (the caller
talks over a long greeting that must keep playing), and for the real models tts_cache_bytes 0
(each recording is said in both variants: the second would otherwise hit the TTS cache).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import json
import logging
import math
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zapvoice.agent.clock import MonotonicClock  # noqa: E402
from zapvoice.agent.vad import EnergyVAD, SpeechStarted, TurnEnded  # noqa: E402
from zapvoice.agent.zuckzapgo.protocol import ZuckZapGoAPI  # noqa: E402
from zapvoice.agent.zuckzapgo.server import ZuckZapGoAgent  # noqa: E402
from zapvoice.providers.contracts import (
    Engines,  # noqa: E402
    Speech,  # noqa: E402
)
from zapvoice.providers.llm import OpenAIChat  # noqa: E402

from tests.support.fake_engines import FakeChat, FakeSTT, FakeTTS, ScriptedReply  # noqa: E402
from tests.support.fake_llm import STORY  # noqa: E402
from tests.support.fake_zuckzapgo import frames_of  # noqa: E402
from tests.support.real_models import RealModelsMissing, english_clips, joe_voice, whisper_base_dir  # noqa: E402
from tests.support.speech import speak  # noqa: E402
from zapvoice.audio import PIPELINE_RATE, to_int16  # noqa: E402
from zapvoice.composition import cache_fixed_phrases, freeze_heap, load_voices, load_whisper  # noqa: E402
from zapvoice.evaluation import read_clip  # noqa: E402
from zapvoice.settings import Settings, nest  # noqa: E402
from zapvoice.word_errors import NO_ERRORS, word_errors  # noqa: E402

if "--run-agent" not in sys.argv:  # not in the agent's process: nothing there may import torch (the random-weight
    # Piper builder's dependency), or every full garbage collection of the agent would walk torch's 140k objects
    from benchmarks.bench_providers import clip, free_port, percentile, wait_ready
    from benchmarks.publish import provenance, publish, start

TOKEN = "bench-instance-token"
FRAME_S = 0.06
FRAME = 960
END_SILENCE_S = Settings(_env_file=None).vad.end_silence_ms / 1000
AUDIBLE_DBFS = -40.0
UTTERANCES = ["Bom dia, eu queria marcar uma consulta.", "Quero marcar uma consulta para amanhã de manhã.",
              "Vocês atendem pelo convênio da empresa?"]
INTERRUPTION = "Espera, na verdade eu queria saber outra coisa."
STT_TEXT = "Quero marcar uma consulta para amanhã de manhã."
REPLY = "Claro! Posso marcar para amanhã às nove horas."
LONG_REPLY = f"{STORY} {STORY}"  # about 11 s of FakeTTS tone
TTS_S_PER_CHAR = 0.03  # FakeTTS's default


# --- the agent's process ------------------------------------------------------------------------

def run_agent_process(config: dict, serve=None) -> None:
    """`--run-agent`: one or more ZuckZapGoAgents sharing one set of engines, until SIGTERM (`serve`: another
    coroutine of the config, as bench_gateway's). Logging as `zapvoice agent` sets it up; the agents start once
    the ready file is written."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpcore", "faster_whisper"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    asyncio.run((serve or _agents)(config))


async def _agents(config: dict) -> None:
    all_settings = [Settings(_env_file=None, **nest(values)) for values in config["agents"]]
    first = all_settings[0]
    if config["engines"] == "models":  # one Whisper per distinct stt section (agents may differ in it), one voice
        llm, tts = OpenAIChat(first.llm), load_voices(first)
        whispers = {key: load_whisper(s) for key, s in {s.stt.model_dump_json(): s for s in all_settings}.items()}
        engines_of = [Engines(whispers[s.stt.model_dump_json()], llm, tts) for s in all_settings]
    else:
        engines_of = [instant_backends(config)] * len(all_settings)
    for engines, s in {id(e): (e, s) for e, s in zip(engines_of, all_settings)}.values():
        await cache_fixed_phrases(engines, s)
    freeze_heap()
    apis = [ZuckZapGoAPI(s.zuckzapgo.url, s.zuckzapgo.token.get_secret_value()) for s in all_settings]
    agents = [ZuckZapGoAgent(s, engines, api) for s, engines, api in zip(all_settings, engines_of, apis)]
    pollers = [asyncio.create_task(agent.run()) for agent in agents]
    await watched_until_sigterm(config)
    for poller in pollers:
        poller.cancel()
    for agent in agents:
        await agent.aclose()
    for api in apis:
        await api.aclose()
    if config["engines"] == "models":
        for whisper in whispers.values():
            whisper.close()
        await llm.aclose()
        tts.close()


def instant_backends(config: dict) -> Engines:
    """The instant providers: the test fakes with zero delays, TTS behind a cache."""
    clock = MonotonicClock()
    return Engines(FakeSTT(clock, [config["stt_text"]], delay_s=0.0),
                   FakeChat(clock, [ScriptedReply(config["reply"])], first_token_s=0.0, token_s=0.0),
                   CachedTTS(FakeTTS(clock, s_per_char=TTS_S_PER_CHAR, delay_s=0.0)))


async def watched_until_sigterm(config: dict) -> None:
    """Time the event loop and the garbage collector, write the ready file, wait for SIGTERM, then write
    the timings to the lag file."""
    lags: list[tuple[float, float, float]] = []
    watcher = asyncio.create_task(_watch_loop(lags))
    collections = _watch_gc()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    Path(config["ready_file"]).write_text("ready")
    await stop.wait()
    watcher.cancel()
    Path(config["lag_file"]).write_text(json.dumps({"loop": lags, "gc": collections}))


async def _watch_loop(lags: list[tuple[float, float, float]]) -> None:
    """How late the agent's event loop wakes a 10 ms sleep: (time.monotonic(), seconds late, CPU seconds
    the loop's thread ran meanwhile), for the parent to pick its window (CLOCK_MONOTONIC is the same in
    every process). A late wake-up with little CPU was the OS running something else."""
    while True:
        due, cpu = time.monotonic() + 0.01, time.thread_time()
        await asyncio.sleep(0.01)
        now = time.monotonic()
        lags.append((now, now - due, time.thread_time() - cpu))


def _watch_gc() -> list[tuple[float, int, float]]:
    """The garbage collector's pauses: (time.monotonic() at the end, generation, seconds)."""
    pauses: list[tuple[float, int, float]] = []
    started = [0.0]

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.monotonic(), info["generation"], time.perf_counter() - started[0]))
    gc.callbacks.append(timed)
    return pauses


class CachedTTS:
    """FakeTTS behind a cache, as PiperTTS has one: a fixed phrase (the greeting) is synthesized once."""

    def __init__(self, tts: FakeTTS):
        self.tts = tts
        self.cache: dict[tuple, Speech] = {}

    async def speak(self, text: str, voice: str | None = None, speed: float = 1.0) -> Speech:
        if (text, voice, speed) not in self.cache:
            self.cache[text, voice, speed] = await self.tts.speak(text, voice, speed)
        return self.cache[text, voice, speed]


# --- processes ------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Child:
    """A process of this benchmark, its output in a log file (shown if it fails)."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        env = {name: value for name, value in os.environ.items() if not name.startswith("ZAPVOICE_")}
        env["HF_HUB_OFFLINE"] = "1"
        with log.open("w") as out:
            self.process = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


class FakeZuckZapGo(Child):
    """The fake engine (uvicorn, real time) in its own process."""

    def __init__(self, work: Path):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        super().__init__([sys.executable, "-c", "import uvicorn; from tests.support.fake_zuckzapgo import "
                          f"build_fake_zuckzapgo; uvicorn.run(build_fake_zuckzapgo({TOKEN!r}, enabled=True), "
                          f"port={port}, log_level='warning')"], work / f"fake-zuckzapgo-{port}.log")
        wait_ready(f"{self.url}/_fake/calls", self.process, timeout=60)


class FakeLLM(Child):
    def __init__(self, work: Path):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/v1"
        super().__init__([sys.executable, "-c", "import uvicorn; from tests.support.fake_llm import build_fake_llm; "
                          f"uvicorn.run(build_fake_llm(), port={port}, log_level='warning')"], work / f"fake-llm-{port}.log")
        wait_ready(f"http://127.0.0.1:{port}/v1/chat/completions", self.process, timeout=60, any_answer=True)


class AgentProcess(Child):
    """`bench_agent.py --run-agent`: the agents of `agents` (settings values each) on shared engines."""

    def __init__(self, work: Path, engines: str, agents: list[dict], reply: str = REPLY, script: str = __file__):
        """`script`: the benchmark whose `--run-agent` runs (bench_gateway's runs a gateway server)."""
        ready = work / f"agent-{secrets.token_hex(4)}.ready"
        self.lag_file = ready.with_suffix(".lag.json")
        config = {"engines": engines, "agents": agents, "stt_text": STT_TEXT, "reply": reply, "ready_file": str(ready),
                  "lag_file": str(self.lag_file)}
        super().__init__([sys.executable, str(Path(script).resolve()), "--run-agent", json.dumps(config)],
                         ready.with_suffix(".log"))
        deadline = time.monotonic() + 300
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the agent did not start:\n{self.tail()}")
            time.sleep(0.1)

    def loop_lags_ms(self, start: float, end: float) -> list[tuple[float, float]]:
        """After stop(): how late the agent's event loop woke up between two time.monotonic() instants, and the
        CPU time its thread had meanwhile."""
        lags = json.loads(self.lag_file.read_text())["loop"] if self.lag_file.exists() else []
        return [(lag * 1000, cpu * 1000) for at, lag, cpu in lags if start <= at <= end]

    def gc_pauses_ms(self, start: float, end: float) -> list[tuple[int, float]]:
        """After stop(): (generation, ms) of the garbage collections between two time.monotonic() instants."""
        pauses = json.loads(self.lag_file.read_text())["gc"] if self.lag_file.exists() else []
        return [(generation, seconds * 1000) for at, generation, seconds in pauses if start <= at <= end]


def agent_values(fake: FakeZuckZapGo, records: Path, **overrides) -> dict:
    """Settings of one agent: defaults, except limits that would end or refuse benchmark calls."""
    values = dict(zuckzapgo_url=fake.url, zuckzapgo_token=TOKEN, agent_record_dir=str(records),
                  agent_idle_prompt_s=3600.0, agent_max_call_s=3600.0, agent_max_calls=1000, auto_download=False)
    return values | overrides


# --- the callers (this process) -------------------------------------------------------------------

@dataclass(frozen=True)
class Utterance:
    pcm: bytes  # s16le, as posted to /say
    first_s: float  # first 20 ms above -40 dBFS
    last_s: float  # end of the last 20 ms above -40 dBFS
    vad_end_floor_s: float  # the VAD's end-of-turn decision (frame delivery) - last_s - end silence
    vad_onset_s: float  # the VAD's onset decision (frame delivery) - first_s

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / PIPELINE_RATE

    @classmethod
    def of(cls, text: str) -> Utterance:
        return cls.from_pcm(to_int16(speak(text)))

    @classmethod
    def from_pcm(cls, pcm: np.ndarray) -> Utterance:
        """A caller's speech as int16 samples at 16 kHz (espeak-ng's, or a real recording)."""
        x = pcm[: pcm.size // 320 * 320].astype(np.float64).reshape(-1, 320) / 32768
        loud = np.flatnonzero(10 * np.log10(np.maximum((x ** 2).mean(axis=1), 1e-12)) > AUDIBLE_DBFS)
        first, last = loud[0] * 0.02, (loud[-1] + 1) * 0.02
        onset_frame, end_frame = _vad_decisions(pcm.tobytes())
        return cls(pcm.tobytes(), first, last, end_frame * FRAME_S - last - END_SILENCE_S, onset_frame * FRAME_S - first)


def _vad_decisions(pcm: bytes) -> tuple[int, int]:
    """Frames (from the utterance's first) on which the EnergyVAD confirms the onset and ends the turn,
    fed as the fake feeds it: -60 dBFS noise, then the utterance zero-padded to whole frames."""
    rng = np.random.default_rng(0)
    noise = [np.clip(rng.standard_normal(FRAME) * 32768 * 10 ** (-60 / 20), -32768, 32767).astype("<i2").tobytes()
             for _ in range(60)]
    lead = 34
    vad = EnergyVAD(Settings(_env_file=None).vad)
    onset = end = None
    for k, frame in enumerate(noise[:lead] + frames_of(pcm) + noise[lead:]):
        for event in vad.process(np.frombuffer(frame, "<i2").astype(np.float32) / 32768):
            if isinstance(event, SpeechStarted) and onset is None and k >= lead:
                onset = k - lead
            if isinstance(event, TurnEnded) and end is None:
                end = k - lead
    return onset, end


class Phone:
    """The harness side of one fake engine: ring, speak as callers, read reports."""

    def __init__(self, fake: FakeZuckZapGo):
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.http = httpx.AsyncClient(base_url=fake.url, timeout=120, limits=limits)

    async def ring(self, count: int = 1) -> list[str]:
        answers = await asyncio.gather(*(self.http.post("/_fake/inbound", json={"from": f"55219{n:08d}"})
                                         for n in range(count)))
        return [answer.json()["callId"] for answer in answers]

    async def answered(self, call_ids: list[str], timeout: float = 60) -> None:
        """Until every call is active (one product status request per poll, not N reports)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = (await self.http.get("/call/status", headers={"token": TOKEN})).json()["data"]["calls"]
            if sum(1 for c in status if c["callId"] in call_ids and c["state"] == "active") == len(call_ids):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("the agent did not answer every call")

    async def say(self, call_id: str, pcm: bytes) -> float:
        """The caller speaks after what is queued; when it starts (call seconds)."""
        return (await self.http.post(f"/_fake/calls/{call_id}/say", content=pcm)).json()["start_s"]

    async def report(self, call_id: str) -> dict:
        return (await self.http.get(f"/_fake/calls/{call_id}")).json()

    async def hang_up(self, call_ids: list[str]) -> None:
        await asyncio.gather(*(self.http.post(f"/_fake/calls/{c}/hangup") for c in call_ids))

    async def quiet_after(self, call_id: str, after_s: float, quiet_s: float = 0.8, timeout: float = 30) -> bool:
        """Until the bot has sent something after `after_s` and then nothing for `quiet_s`; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            report = await self.report(call_id)
            sent = [e["t"] for e in report["client_log"] if e["t"] is not None and e["t"] > after_s]
            if sent and report["heard_s"] - sent[-1] >= quiet_s:
                return True
            await asyncio.sleep(0.1)
        return False

    async def offset(self) -> float:
        """The fake's clock (`*_at` in reports) minus this process's time.monotonic()."""
        before = time.monotonic()
        await self.http.get("/webhook", headers={"token": TOKEN})
        after = time.monotonic()
        requests = (await self.http.get("/_fake/requests")).json()
        return next(r["t"] for r in reversed(requests) if r["path"] == "/webhook") - (before + after) / 2

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class Turn:
    start_s: float  # call seconds, when the caller's utterance started
    utterance: Utterance

    @property
    def speech_end(self) -> float:
        return self.start_s + self.utterance.last_s


def reply_overheads(report: dict, turns: list[Turn]) -> list[float | None]:
    """ms from end of speech + end silence to the first client message after it (before the next turn);
    None when the bot did not answer in time."""
    sent = sorted(e["t"] for e in report["client_log"] if e["t"] is not None)
    out = []
    for n, turn in enumerate(turns):
        limit = turns[n + 1].start_s if n + 1 < len(turns) else math.inf
        i = bisect.bisect_right(sent, turn.speech_end)
        out.append((sent[i] - turn.speech_end - END_SILENCE_S) * 1000 if i < len(sent) and sent[i] < limit else None)
    return out


def record_turns(records: Path) -> list[dict]:
    """The turns of every call record with timings (replies to the caller, not fixed phrases)."""
    turns = []
    for path in sorted(records.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry["event"] == "turn" and entry.get("first_audio_ms") is not None:
                turns.append(entry)
    return turns


def stats(values: list[float], *qs: float) -> list[str]:
    values = [v for v in values if v is not None]
    return [f"{percentile(values, q):.0f}" if values else "n/a" for q in qs]


async def converse(phone: Phone, call_id: str, utterances: list[Utterance], quiet_s: float = 0.8) -> list[Turn]:
    """Say each utterance once the bot's previous reply is over."""
    turns = []
    for utterance in utterances:
        start = await phone.say(call_id, utterance.pcm)
        turns.append(Turn(start, utterance))
        if not await phone.quiet_after(call_id, start + utterance.last_s, quiet_s):
            print(f"warning: no reply to a turn of {call_id}", file=sys.stderr)
    return turns


# --- 1. reply overhead, instant providers -------------------------------------------------------------

def bench_reply_overhead(work: Path, calls: int, turns: int, utterances: list[Utterance]) -> list[str]:
    fake = FakeZuckZapGo(work)
    records = work / "records-overhead"
    agent = AgentProcess(work, "instant", [agent_values(fake, records)])

    async def scenario() -> list[tuple[dict, list[Turn]]]:
        phone = Phone(fake)
        results = []
        try:
            for _ in range(calls):  # one call at a time: the overhead without load
                (call_id,) = await phone.ring()
                await phone.answered([call_id])
                await phone.quiet_after(call_id, 0.0)  # the greeting
                said = await converse(phone, call_id, [utterances[n % len(utterances)] for n in range(turns)])
                results.append((await phone.report(call_id), said))
                await phone.hang_up([call_id])
        finally:
            await phone.aclose()
        return results

    try:
        results = asyncio.run(scenario())
    finally:
        agent.stop()
        fake.stop()
    overhead = [v for report, said in results for v in reply_overheads(report, said)]
    floors = [t.utterance.vad_end_floor_s * 1000 for _, said in results for t in said]
    added = [o - f for o, f in zip(overhead, floors) if o is not None]
    recorded = [t["first_audio_ms"] - END_SILENCE_S * 1000 for t in record_turns(records)]
    answered = sum(v is not None for v in overhead)
    return ["| figure | p50 | p95 | max |", "|---|---|---|---|",
            f"| **reply overhead** (engine: first frame - end of speech - 600 ms) | **{stats(overhead, 50)[0]}** | "
            f"{' | '.join(stats(overhead, 95, 100))} |",
            f"| VAD floor for these utterances (frame timing, agent excluded) | {' | '.join(stats(floors, 50, 95, 100))} |",
            f"| overhead - VAD floor (what the agent adds) | {' | '.join(stats(added, 50, 95, 100))} |",
            f"| agent record: first_audio_ms - 600 | {' | '.join(stats(recorded, 50, 95, 100))} |", "",
            f"{answered}/{len(overhead)} turns answered ({calls} calls x {turns} turns, one call at a time)."]


# --- 2. reply time, real models, speculative STT on and off --------------------------------------------

@dataclass(frozen=True)
class Recording:
    name: str
    text: str
    utterance: Utterance


def real_recordings() -> list[Recording]:
    """The real English recordings as callers' utterances (16 kHz mono, as the fake engine takes them)."""
    return [Recording(clip.name, clip.text, Utterance.from_pcm(to_int16(read_clip(clip))))
            for clip in english_clips()]


@dataclass(frozen=True)
class ModelVariant:
    label: str
    speculative_stt: bool
    short_window: bool


MODEL_VARIANTS = (ModelVariant("short window, speculative STT (the defaults)", True, True),
                  ModelVariant("padded 30 s window, speculative STT", True, False),
                  ModelVariant("short window, no speculative STT", False, True))


def bench_models(work: Path, turns: int, recordings: list[Recording]) -> list[str]:
    """Three agents on real engines (Whisper base, the joe voice): the defaults, the padded Whisper window
    (stt.short_window off) and no speculative STT, each on its own fake engine; one turn at a time, in a
    rotating order."""
    llm = FakeLLM(work)
    fakes = {v: FakeZuckZapGo(work) for v in MODEL_VARIANTS}
    records = {v: work / f"records-models-{n}" for n, v in enumerate(MODEL_VARIANTS)}
    models = dict(whisper_model=str(whisper_base_dir()), voices=[str(joe_voice())], llm_url=llm.url,
                  llm_model="pace-300-30", tts_cache_bytes=0)  # each recording is said in every variant
    said_texts: dict[ModelVariant, list[Recording]] = {v: [] for v in MODEL_VARIANTS}
    agent = None
    try:
        agent = AgentProcess(work, "models", [agent_values(fakes[v], records[v], agent_speculative_stt=v.speculative_stt,
                                                           stt_short_window=v.short_window, **models)
                                              for v in MODEL_VARIANTS])

        async def scenario() -> dict[ModelVariant, tuple[dict, list[Turn]]]:
            phones = {v: Phone(fake) for v, fake in fakes.items()}
            try:
                calls = {v: (await phone.ring())[0] for v, phone in phones.items()}
                said: dict[ModelVariant, list[Turn]] = {v: [] for v in MODEL_VARIANTS}
                for v, phone in phones.items():
                    await phone.answered([calls[v]])
                    await phone.quiet_after(calls[v], 0.0, timeout=60)  # the greeting
                for n in range(turns):  # one at a time, never together, the order rotating turn by turn
                    recording = recordings[n % len(recordings)]
                    order = MODEL_VARIANTS[n % len(MODEL_VARIANTS):] + MODEL_VARIANTS[:n % len(MODEL_VARIANTS)]
                    for v in order:
                        said[v] += await converse(phones[v], calls[v], [recording.utterance], quiet_s=1.0)
                        said_texts[v].append(recording)
                    print(f"models: turn {n + 1}/{turns} ({recording.name})", file=sys.stderr)
                return {v: (await phones[v].report(calls[v]), said[v]) for v in phones}
            finally:
                for phone in phones.values():
                    await phone.aclose()

        results = asyncio.run(scenario())
    except Exception:
        if agent is not None:
            print(agent.tail(), file=sys.stderr)
        raise
    finally:
        if agent is not None:
            agent.stop()
        for child in (*fakes.values(), llm):
            child.stop()
    rows = ["| variant | turns answered | **reply time p50** | p95 | max | VAD floor p50 | reply - floor p50 | "
            "agent record: first_audio_ms - 600, p50 | stt_ms p50 | first_token_ms p50 | first_audio_ms p50 | "
            "speculative transcript used | WER % of the agent's transcripts |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    p50 = {}
    for v in MODEL_VARIANTS:
        report, said = results[v]
        overhead = reply_overheads(report, said)
        floors = [t.utterance.vad_end_floor_s * 1000 for t in said]
        added = [o - f for o, f in zip(overhead, floors) if o is not None]
        turns_recorded = record_turns(records[v])
        answered = [x for x in overhead if x is not None]
        p50[v] = percentile(answered, 50) if answered else math.nan
        recorded = [t["first_audio_ms"] - END_SILENCE_S * 1000 for t in turns_recorded]
        if len(turns_recorded) == len(said_texts[v]):
            errors = sum((word_errors(r.text, t["user"], "en") for r, t in zip(said_texts[v], turns_recorded)), NO_ERRORS)
            wer = f"{errors.rate * 100:.1f} ({errors.errors} / {errors.words})"
        else:
            wer = f"n/a ({len(turns_recorded)} turns recorded for {len(said_texts[v])} said)"
        high = "p95" if len(answered) >= 20 else None
        rows.append(f"| {v.label} | {len(answered)}/{len(overhead)} | "
                    f"**{stats(overhead, 50)[0]}** | {stats(overhead, 95)[0] if high else 'n<20'} | {stats(overhead, 100)[0]} | "
                    f"{stats(floors, 50)[0]} | {stats(added, 50)[0]} | {stats(recorded, 50)[0]} | "
                    f"{stats([t['stt_ms'] for t in turns_recorded], 50)[0]} | "
                    f"{stats([t['first_token_ms'] for t in turns_recorded], 50)[0]} | "
                    f"{stats([t['first_audio_ms'] for t in turns_recorded], 50)[0]} | "
                    f"{sum(t.get('speculative_stt', False) for t in turns_recorded)}/{len(turns_recorded)} | {wer} |")
    by_clip = []
    for kind, label in (("librivox", "LibriVox sentences (3-7 s)"), ("cards", "cards phrases (1-3.5 s)")):
        cells = []
        for v in MODEL_VARIANTS:
            report, said = results[v]
            values = [x for x, r in zip(reply_overheads(report, said), said_texts[v])
                      if x is not None and r.name.startswith("sense") == (kind == "librivox")]
            cells.append(f"{stats(values, 50)[0]} (n={len(values)})")
        by_clip.append(f"| {label} | {' | '.join(cells)} |")
    defaults, padded, no_spec = MODEL_VARIANTS
    rows += ["", f"| caller audio | {' | '.join(f'reply time p50, {v.label}' for v in MODEL_VARIANTS)} |",
             "|---|---|---|---|", *by_clip,
             "", f"Reply time = first bot frame at the engine - end of the caller's speech - 600 ms (vad_end_silence_ms); "
             f"n = {turns} turns per variant ({len(recordings)} recordings, each said {turns / len(recordings):g} times "
             "per variant, in a rotating order). VAD floor: what an infinitely fast agent would show with these "
             "recordings (frame timing). Saving of the short window (p50 padded - p50 defaults): "
             f"**{p50[padded] - p50[defaults]:.0f} ms**; of speculative STT (p50 without - p50 defaults): "
             f"**{p50[no_spec] - p50[defaults]:.0f} ms**. Record times are ms after the agent's end of speech (its "
             "end-of-turn decision - 600 ms). The reply is the fake LLM's echo, \"Você disse: <transcript>\" "
             "(one sentence, as long as the transcript: 2-22 words), spoken by the joe voice."]
    return rows


# --- 3. barge-in --------------------------------------------------------------------------------------

def bench_barge_in(work: Path, calls: int, per_call: int, utterances: list[Utterance],
                   interruption: Utterance) -> list[str]:
    fake = FakeZuckZapGo(work)
    records = work / "records-barge-in"
    agent = AgentProcess(work, "instant", [agent_values(fake, records)], reply=LONG_REPLY)

    async def first_frame_after(phone: Phone, call_id: str, after_s: float) -> float:
        for _ in range(600):
            report = await phone.report(call_id)
            sent = [e["t"] for e in report["client_log"] if e["t"] is not None and e["t"] > after_s]
            if sent:
                return sent[0]
            await asyncio.sleep(0.05)
        raise RuntimeError("the bot did not reply")

    async def until_call_time(phone: Phone, call_id: str, call_s: float) -> None:
        while (await phone.report(call_id))["heard_s"] < call_s:
            await asyncio.sleep(0.05)

    async def scenario() -> list[float | None]:
        phone = Phone(fake)
        cuts = []
        try:
            for _ in range(calls):
                (call_id,) = await phone.ring()
                await phone.answered([call_id])
                await phone.quiet_after(call_id, 0.0)
                start = await phone.say(call_id, utterances[0].pcm)
                speech_end = start + utterances[0].last_s
                onsets = []
                for _ in range(per_call):  # interrupt each long reply 1.5 s in; its answer is the next long reply
                    talking_since = await first_frame_after(phone, call_id, speech_end)
                    await until_call_time(phone, call_id, talking_since + 1.5)
                    start = await phone.say(call_id, interruption.pcm)
                    onsets.append(start + interruption.first_s)
                    speech_end = start + interruption.last_s
                await asyncio.sleep(1.0)
                report = await phone.report(call_id)
                await phone.hang_up([call_id])
                for onset in onsets:
                    cut = next((seg for seg in report["heard_segments"] if seg[0] <= onset < seg[1]), None)
                    cuts.append(None if cut is None else (cut[1] - onset) * 1000)
        finally:
            await phone.aclose()
        return cuts

    try:
        cuts = asyncio.run(scenario())
    finally:
        agent.stop()
        fake.stop()
    interrupted = sum(t["interrupted"] for t in record_turns(records))
    return ["| figure | p50 | p95 | max |", "|---|---|---|---|",
            f"| **caller onset -> end of the bot's heard speech** | **{stats(cuts, 50)[0]}** | "
            f"{' | '.join(stats(cuts, 95, 100))} |", "",
            f"{sum(c is not None for c in cuts)}/{len(cuts)} interruptions measured ({calls} calls), "
            f"{interrupted} replies recorded as interrupted. The VAD confirms this onset on the frame delivered "
            f"{interruption.vad_onset_s * 1000:.0f} ms after the audible onset (vad_onset_ms 60, 60 ms frames); "
            "what the engine already holds then (lead_frames 2) still plays."]


# --- 4. capacity ---------------------------------------------------------------------------------------

@dataclass
class Window:
    """N calls over a measurement window: CPU of both processes, and the engine's underruns."""

    agent_cpu: float
    fake_cpu: float
    start: float  # fake clock
    end: float
    underruns_before: dict[str, int]  # per call, at the window's start (the calls' start-up)
    monotonic: tuple[float, float]  # the window in time.monotonic()
    reports: list[dict] | None = None  # fetched after the window

    def underruns(self) -> int:
        return sum(r["underrun_ticks"] - self.underruns_before[r["callId"]] for r in self.reports)

    def played_ticks(self) -> float:
        """Ticks of bot speech the engine played inside the window."""
        return sum(max(0.0, min(r["answered_at"] + b, self.end) - max(r["answered_at"] + a, self.start)) / FRAME_S
                   for r in self.reports for a, b in r["heard_segments"])

    def lag_cells(self, agent: AgentProcess) -> str:
        """p99 and max of the agent's event loop lag in the window, and its longest garbage collection
        (read after the agent stopped)."""
        lags = agent.loop_lags_ms(*self.monotonic) or [(math.nan, math.nan)]
        late, busy = max(lags)
        generation, longest = max(agent.gc_pauses_ms(*self.monotonic), key=lambda pause: pause[1], default=(0, 0.0))
        return (f"{percentile([lag for lag, _ in lags], 99):.1f} | {late:.0f} ({busy:.0f}) | "
                f"{longest:.1f} (gen {generation})")

    def underrun_cells(self) -> str:
        """Underruns in the window (per 1000 ticks of bot speech), and before it."""
        return (f"{self.underruns()} ({self.underruns() / max(self.played_ticks(), 1) * 1000:.2f}) | "
                f"{sum(self.underruns_before.values())}")


async def measure_window(phone: Phone, agent: AgentProcess, fake: FakeZuckZapGo, call_ids: list[str],
                         seconds: float) -> Window:
    before = {call_id: (await phone.report(call_id))["underrun_ticks"] for call_id in call_ids}
    offset = await phone.offset()
    started, agent0, fake0 = time.monotonic(), agent.cpu(), fake.cpu()
    await asyncio.sleep(seconds)
    ended, agent1, fake1 = time.monotonic(), agent.cpu(), fake.cpu()
    wall = ended - started
    return Window((agent1 - agent0) / wall * 100, (fake1 - fake0) / wall * 100, started + offset, ended + offset, before,
                  (started, ended))


def bench_listening(work: Path, counts: list[int], window_s: float, speech: bytes) -> list[str]:
    """N calls at once; every caller talks (speech with pauses) through a long greeting that keeps playing."""
    settle_s = 3.0
    greeting = " ".join(["Olá! Você ligou para a Clínica Sorriso, como posso ajudar hoje?"] *
                        math.ceil((window_s + settle_s + 40) / (63 * TTS_S_PER_CHAR)))
    rows = ["| calls | jitter p50 ms | jitter p99 ms | jitter max ms | underrun ticks in window (per 1000 played) | "
            "underrun ticks at start-up | max engine queue (frames) | agent loop lag p99 ms | max (CPU) | longest GC ms | "
            "agent CPU % | fake engine CPU % |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for count in counts:
        fake = FakeZuckZapGo(work)
        agent = AgentProcess(work, "instant", [agent_values(fake, work / f"records-listen-{count}",
                                                            agent_greeting=greeting, barge_in=False)])

        async def scenario() -> Window:
            phone = Phone(fake)
            try:
                call_ids = await phone.ring(count)
                await phone.answered(call_ids)
                clips = math.ceil((window_s + settle_s + 30) * PIPELINE_RATE * 2 / len(speech))
                for call_id in call_ids:  # each caller at its own place in the speech
                    shift = random.randrange(len(speech) // 2) * 2
                    await phone.say(call_id, (speech[shift:] + speech[:shift]) * clips)
                await asyncio.sleep(settle_s)
                window = await measure_window(phone, agent, fake, call_ids, window_s)
                window.reports = [await phone.report(call_id) for call_id in call_ids]
                await phone.hang_up(call_ids)
                return window
            finally:
                await phone.aclose()

        try:
            window = asyncio.run(scenario())
        except Exception:
            print(agent.tail(), file=sys.stderr)
            raise
        finally:
            agent.stop()
            fake.stop()
        jitter = []
        for report in window.reports:
            times = [report["answered_at"] + e["t"] for e in report["client_log"] if e["t"] is not None]
            inside = [t for t in times if window.start <= t <= window.end]
            jitter += [abs(b - a - FRAME_S) * 1000 for a, b in zip(inside, inside[1:])]
        jitter_cells = " | ".join(f"{percentile(jitter, q):.1f}" for q in (50, 99, 100))
        rows.append(f"| {count} | {jitter_cells} | {window.underrun_cells()} | "
                    f"{max(r['max_queue_frames'] for r in window.reports)} | {window.lag_cells(agent)} | "
                    f"{window.agent_cpu:.0f} | {window.fake_cpu:.0f} |")
        print(rows[-1], file=sys.stderr)
    return rows


def bench_active(work: Path, counts: list[int], window_s: float, utterances: list[Utterance]) -> list[str]:
    """N conversations at once, each caller taking a turn as soon as the bot's reply should be over."""
    reply_s = sum(len(s) for s in REPLY.split(" ")) * TTS_S_PER_CHAR + 0.3  # FakeTTS tone length, roughly
    rows = ["| calls | turns | unanswered | **reply overhead p50** | p99 | max | agent record p50 | record p99 | "
            "underrun ticks during the turns (per 1000 played) | underrun ticks at start-up | agent loop lag p99 ms | "
            "max (CPU) | longest GC ms | agent CPU % | fake engine CPU % |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for count in counts:
        fake = FakeZuckZapGo(work)
        records = work / f"records-active-{count}"
        agent = AgentProcess(work, "instant", [agent_values(fake, records)])

        async def caller(phone: Phone, call_id: str, deadline: float) -> list[Turn]:
            turns = []
            await asyncio.sleep(random.uniform(0, 5.0))  # callers out of step
            n = random.randrange(len(utterances))
            while time.monotonic() < deadline:
                utterance = utterances[n % len(utterances)]
                turns.append(Turn(await phone.say(call_id, utterance.pcm), utterance))
                await asyncio.sleep(utterance.seconds + END_SILENCE_S + reply_s + random.uniform(0.3, 0.8))
                n += 1
            return turns

        async def scenario() -> tuple[Window, list[list[Turn]]]:
            phone = Phone(fake)
            try:
                call_ids = await phone.ring(count)
                await phone.answered(call_ids)
                await asyncio.sleep(2.0)  # the greetings
                deadline = time.monotonic() + window_s
                callers = asyncio.gather(*(caller(phone, call_id, deadline) for call_id in call_ids))
                window = await measure_window(phone, agent, fake, call_ids, window_s)
                said = await callers
                await asyncio.sleep(reply_s + 2.0)
                window.reports = [await phone.report(call_id) for call_id in call_ids]
                await phone.hang_up(call_ids)
                return window, said
            finally:
                await phone.aclose()

        try:
            window, said = asyncio.run(scenario())
        except Exception:
            print(agent.tail(), file=sys.stderr)
            raise
        finally:
            agent.stop()
            fake.stop()
        overhead = [v for report, turns in zip(window.reports, said) for v in reply_overheads(report, turns)]
        recorded = [t["first_audio_ms"] - END_SILENCE_S * 1000 for t in record_turns(records)]
        rows.append(f"| {count} | {len(overhead)} | {sum(v is None for v in overhead)} | "
                    f"**{stats(overhead, 50)[0]}** | {' | '.join(stats(overhead, 99, 100))} | "
                    f"{' | '.join(stats(recorded, 50, 99))} | {window.underrun_cells()} | {window.lag_cells(agent)} | "
                    f"{window.agent_cpu:.0f} | {window.fake_cpu:.0f} |")
        print(rows[-1], file=sys.stderr)
    return rows


# --- the report ------------------------------------------------------------------------------------------

@contextlib.contextmanager
def scratch(work: Path):
    """A run's logs and call records: kept when it fails or BENCH_KEEP is set, removed otherwise."""
    try:
        yield
    except BaseException:
        print(f"logs and call records kept in {work}", file=sys.stderr)
        raise
    if os.environ.get("BENCH_KEEP"):
        print(f"logs and call records kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


def machine() -> str:
    return (f"The agent, the fake ZuckZapGo and this script (the callers) are three processes sharing the "
            f"{os.cpu_count()} cores.")


SECTIONS = ("overhead", "models", "barge-in", "listen", "active")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every measurement (about 2 minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--listen-calls", help="call counts of the listening capacity run (default 10,25,50,75,100,150,200)")
    parser.add_argument("--active-calls", help="call counts of the conversation capacity run (default 10,20,40,60,80)")
    parser.add_argument("--model-turns", type=int, help="turns per variant of the real-model run (default 20; --quick 4)")
    parser.add_argument("--no-write", action="store_true", help="print the report only, leave BENCHMARKS.md alone")
    parser.add_argument("--run-agent", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_agent:
        run_agent_process(json.loads(args.run_agent))
        return
    only = set(args.only.split(","))
    if only - set(SECTIONS):
        parser.error(f"unknown --only {', '.join(sorted(only - set(SECTIONS)))}; choose from {', '.join(SECTIONS)}")
    quick = args.quick
    listen = [int(n) for n in (args.listen_calls or ("50" if quick else "10,25,50,75,100,150,200")).split(",")]
    active = [int(n) for n in (args.active_calls or ("20" if quick else "10,20,40,60,80")).split(",")]
    recordings = []
    if "models" in only:
        try:
            recordings = real_recordings()
            whisper_base_dir(), joe_voice()
        except RealModelsMissing as missing:
            parser.error(f"real models missing for --only models: {missing}")
    started = start()
    work = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    random.seed(0)
    utterances = [Utterance.of(text) for text in UTTERANCES]
    report = [machine(), "Times in ms."]
    with scratch(work):
        if "overhead" in only:
            calls, turns = (1, 4) if quick else (4, 5)
            report += ["", "### Reply overhead, instant providers (end of speech + 600 ms -> first bot frame)", "",
                       *bench_reply_overhead(work, calls, turns, utterances)]
        if "models" in only:
            turns = args.model_turns or (4 if quick else 20)
            report += ["", "### Reply time with real models: Whisper base int8 + Piper en_US-joe-medium (real weights), "
                       "real English recordings, fake LLM pace-300-30: short vs padded Whisper window, speculative STT on vs off", "",
                       *bench_models(work, turns, recordings)]
        if "barge-in" in only:
            calls, per_call = (1, 3) if quick else (2, 5)
            report += ["", "### Barge-in, instant providers, long reply interrupted 1.5 s in", "",
                       *bench_barge_in(work, calls, per_call, utterances, Utterance.of(INTERRUPTION))]
        if "listen" in only:
            window = 6.0 if quick else 20.0
            report += ["", f"### Capacity: calls that listen while the bot talks ({window:.0f} s window)", "",
                       *bench_listening(work, listen, window, to_int16(clip(20.0)).tobytes()), "",
                       "Jitter: |interval between consecutive bot frames at the engine - 60 ms| (1 ms resolution). "
                       "Underruns: ticks inside the bot's speech at which the engine had nothing queued (an audible "
                       "gap); start-up: before the window, while every call was answered in the same poll. Loop lag: "
                       "how late the agent's event loop woke a 10 ms sleep; (CPU): the CPU time its thread had over "
                       "that sleep (near 10 ms + the lag: busy; near 0: the OS ran something else); GC: its longest "
                       "garbage collection."]
        if "active" in only:
            window = 10.0 if quick else 20.0
            report += ["", f"### Capacity: conversations at once, instant providers ({window:.0f} s of turns)", "",
                       *bench_active(work, active, window, utterances), "",
                       "Each caller speaks again about 0.5 s after the bot's reply should be over (a turn every "
                       "5-6 s per call); turns are counted until the reports, underruns from the first turn."]
    publish("bench_agent", ["## Voice agent on ZuckZapGo calls (`zapvoice agent`)", "", *provenance(started), "", *report],
            write=not args.no_write)


if __name__ == "__main__":
    main()
