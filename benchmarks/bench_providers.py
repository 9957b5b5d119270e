"""Benchmark of the provider service against the engines called in process, side by side in one run.

    pip install -e '.[bench]'   # torch 2.13.0 CPU, to build the random-weight Piper voice
    python benchmarks/bench_providers.py [--runs 15] [--whisper base,tiny]

Models are random-weight copies of the real architectures (Whisper base/tiny, a Piper medium
voice), built once into .bench-models/: their compute time is the real one, their output is
noise. Random Whisper weights never emit end-of-text, so every decode runs to its cap: the
same `max_new_tokens` in the service and in process (CTranslate2 stops at half of prompt +
max_new_tokens, so 36 gives 20 tokens, about a short sentence; the table shows the count). Variants are interleaved run by run, so machine noise hits them alike. Prints a
markdown report for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.model_builders.piper_voice import build_medium_voice  # noqa: E402
from tests.model_builders.whisper import build_random_whisper  # noqa: E402
from tests.support.speech import noise, speak  # noqa: E402
from zapvoice.audio import PIPELINE_RATE, resample, wav_bytes  # noqa: E402

MODELS = ROOT / ".bench-models"
TOKEN = "bench-token"
MAX_NEW_TOKENS = 36  # -> 20 decoded tokens with a 4-token prompt
SENTENCES = [
    "Olá, eu gostaria de marcar uma consulta para amanhã de manhã.",
    "Vocês atendem pelo convênio da empresa onde eu trabalho?",
    "Qual é o endereço da clínica e até que horas vocês ficam abertos?",
]
GREETINGS = [f"Olá! Você ligou para a Clínica Sorriso, unidade {n}. Como posso ajudar?" for n in range(1, 60)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 300, any_answer: bool = False) -> None:
    """Until `url` answers 200 (or anything at all, with any_answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}")
        try:
            status = httpx.get(url, timeout=2).status_code
            if any_answer or status == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def build_models(sizes: list[str]) -> dict[str, Path]:
    paths = {}
    for size in sizes:
        target = MODELS / f"whisper-{size}"
        if not (target / "model.bin").exists():
            print(f"building random Whisper {size} ...", file=sys.stderr)
            build_random_whisper(target, size=size)
        paths[size] = target
    for name, espeak in (("pt_BR-random-medium", "pt-br"), ("en_US-random-medium", "en-us")):
        target = MODELS / "voices" / f"{name}.onnx"
        if not target.exists():
            print(f"building random Piper medium voice {name} ...", file=sys.stderr)
            build_medium_voice(MODELS / "voices", name=name, espeak_voice=espeak)
        paths[name] = target
    return paths


def clip(seconds: float) -> np.ndarray:
    """Speech (espeak-ng) filling `seconds`, over a quiet line, so the speech check lets it through."""
    speech = np.concatenate([np.concatenate([speak(s), np.zeros(PIPELINE_RATE // 4, np.float32)]) for s in SENTENCES * 3])
    out = speech[: int(seconds * PIPELINE_RATE)]
    return (out + noise(seconds, -60)[: out.size]).astype(np.float32)


class Service:
    """`zapvoice serve` in its own process, as a user runs it."""

    def __init__(self, whisper: Path, voices: list[Path], llm_url: str, llm_model: str = "echo"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ZAPVOICE_LOG_LEVEL": "warning"}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "zapvoice"), "serve", "--port", str(self.port), "--token", TOKEN,
             "--whisper-model", str(whisper), "--voices", ",".join(map(str, voices)), "--llm-url", llm_url, "--llm-model", llm_model,
             "--stt-max-new-tokens", str(MAX_NEW_TOKENS), "--stt-queue", "64", "--tts-queue", "64"],
            env=env)
        wait_ready(f"{self.url}/ready", self.process)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(30)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def bench_stt(service: Service, whisper_dir: Path, runs: int, default_runs: int) -> list[str]:
    """/stt against plain faster-whisper in process, with the same settings and with its defaults."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(whisper_dir), device="cpu", compute_type="int8", cpu_threads=os.cpu_count())
    rows = []

    def in_process(audio: np.ndarray, **options) -> int:
        segments, _ = model.transcribe(audio, max_new_tokens=MAX_NEW_TOKENS, **options)
        return sum(len(segment.tokens) for segment in segments)

    tuned = dict(beam_size=1, temperature=0.0, condition_on_previous_text=False, without_timestamps=True)
    for seconds in (3, 10):
        audio = clip(seconds)
        body = wav_bytes(audio, PIPELINE_RATE)
        for language in (None, "pt"):
            query = f"?language={language}" if language else ""
            post = lambda: service.http.post(f"/stt{query}", content=body,  # noqa: E731
                                             headers={"Content-Type": "audio/wav"}).raise_for_status()
            local = lambda: in_process(audio, language=language, **tuned)  # noqa: E731
            post(), local()  # warm both
            tokens = local()
            http_ms, local_ms, default_ms = [], [], []
            for run in range(runs):
                http_ms.append(timed(post))
                local_ms.append(timed(local))
                if run < default_runs:
                    default_ms.append(timed(lambda: in_process(audio, language=language)))
            p50, local_p50, default_p50 = (percentile(t, 50) for t in (http_ms, local_ms, default_ms))
            rows.append(f"| {seconds} s | {language or 'auto'} | {p50:.0f} | {percentile(http_ms, 95):.0f} | "
                        f"{local_p50:.0f} | {percentile(local_ms, 95):.0f} | **{p50 / local_p50:.2f}** | "
                        f"{default_p50:.0f} | {p50 / default_p50:.2f} | {tokens} |")
    return rows


def bench_silence(service: Service, runs: int) -> list[str]:
    rows = []
    for label, audio in (("3 s digital silence", np.zeros(3 * PIPELINE_RATE, np.float32)),
                         ("3 s line noise, -60 dBFS", noise(3.0, -60)),
                         ("3 s loud hiss, -25 dBFS", noise(3.0, -25))):
        body = wav_bytes(audio, PIPELINE_RATE)
        times = []
        for _ in range(runs * 2):
            times.append(timed(lambda: service.http.post("/stt", content=body, headers={"Content-Type": "audio/wav"})))
        rows.append(f"| {label} | {percentile(times, 50):.1f} | {percentile(times, 95):.1f} |")
    return rows


def bench_tts(service: Service, voice_path: Path, runs: int) -> list[str]:
    from piper import PiperVoice

    voice = PiperVoice.load(voice_path)

    def in_process(text: str) -> None:
        audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text)])
        resample(audio, voice.config.sample_rate, PIPELINE_RATE)

    def over_http(text: str) -> None:
        service.http.post("/tts", json={"text": text}, headers={"Accept": "audio/wav"}).raise_for_status()

    in_process(GREETINGS[0]), over_http(GREETINGS[0])  # warm
    cold_http, local = [], []
    for text in GREETINGS[1 : runs + 1]:
        cold_http.append(timed(lambda: over_http(text)))
        local.append(timed(lambda: in_process(text)))
    cached = [timed(lambda: over_http(GREETINGS[1])) for _ in range(runs * 4)]
    cold_p50, local_p50 = percentile(cold_http, 50), percentile(local, 50)
    return [f"| /tts cold (new text) | {cold_p50:.0f} | {percentile(cold_http, 95):.0f} | {local_p50:.0f} | "
            f"**{cold_p50 / local_p50:.2f}** |",
            f"| /tts cached (greeting again) | {percentile(cached, 50):.1f} | {percentile(cached, 95):.1f} | "
            f"{local_p50:.0f} | **{percentile(cached, 50) / local_p50:.3f}** |"]


async def _llm_latencies(url: str, body: dict, headers: dict, concurrency: int, per_worker: int) -> list[float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as http:
        await http.post(url, json=body)
        times: list[float] = []

        async def worker() -> None:
            for _ in range(per_worker):
                started = time.perf_counter()
                (await http.post(url, json=body)).raise_for_status()
                times.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return times


def bench_llm(services: dict[str, Service], fake_url: str) -> list[str]:
    """Per upstream model ("echo" answers at once: CPU-bound, measures forwarding cost; "delay-200"
    answers in 200 ms, like a fast LLM), /llm against calling the fake upstream directly."""
    messages = [{"role": "user", "content": "Quero marcar uma consulta"}]
    rows = []
    for model, service in services.items():
        for concurrency, per_worker in ((1, 200), (32, 15)) if model == "echo" else ((1, 20), (32, 4)):
            direct, via = [], []
            for _ in range(2):  # alternate blocks of each, twice
                direct += asyncio.run(_llm_latencies(f"{fake_url}/v1/chat/completions",
                                                     {"model": model, "messages": messages}, {}, concurrency, per_worker))
                via += asyncio.run(_llm_latencies(f"{service.url}/llm", {"system": "", "messages": messages},
                                                  {"Authorization": f"Bearer {TOKEN}"}, concurrency, per_worker))
            added = percentile(via, 50) - percentile(direct, 50)
            upstream = "instant" if model == "echo" else "200 ms"
            rows.append(f"| {upstream} | {concurrency} | {percentile(direct, 50):.2f} | {percentile(via, 50):.2f} | "
                        f"**{added:.2f}** | {percentile(direct, 95):.2f} | {percentile(via, 95):.2f} |")
    return rows


def bench_llm_both(service: Service, whisper: Path, voices: list[Path], fake_url: str) -> list[str]:
    slow_upstream = Service(whisper, voices, f"{fake_url}/v1", llm_model="delay-200")
    try:
        return bench_llm({"echo": service, "delay-200": slow_upstream}, fake_url)
    finally:
        slow_upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--default-runs", type=int, default=5, help="runs of faster-whisper's slow defaults")
    parser.add_argument("--whisper", default="base,tiny")
    args = parser.parse_args()
    sizes = args.whisper.split(",")
    paths = build_models(sizes)
    voices = [paths["pt_BR-random-medium"], paths["en_US-random-medium"]]

    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    fake = subprocess.Popen([sys.executable, "-c", "import uvicorn; from tests.support.fake_llm import build_fake_llm; "
                             f"uvicorn.run(build_fake_llm(), port={fake_port}, log_level='warning')"], cwd=ROOT)
    report = [f"Machine: {os.cpu_count()} cores; {args.runs} runs per figure (faster-whisper defaults: "
              f"{args.default_runs}); times in ms.", ""]
    try:
        wait_ready(fake_url, fake, any_answer=True)
        for index, size in enumerate(sizes):
            service = Service(paths[size], voices, f"{fake_url}/v1")
            try:
                report += [f"### /stt, Whisper {size} (random weights, int8)", "",
                           "| clip | language | /stt p50 | /stt p95 | in-process p50 | in-process p95 | ratio p50 | "
                           "fw defaults p50 | ratio to defaults | tokens |", "|---|---|---|---|---|---|---|---|---|---|",
                           *bench_stt(service, paths[size], args.runs, args.default_runs), ""]
                if index == 0:
                    report += ["### /stt on audio without speech (Whisper not run)", "",
                               "| audio | p50 | p95 |", "|---|---|---|", *bench_silence(service, args.runs), "",
                               "### /tts, Piper medium (random weights), 16 kHz WAV", "",
                               "| request | p50 | p95 | Piper in process p50 | ratio |", "|---|---|---|---|---|",
                               *bench_tts(service, voices[0], args.runs), "",
                               "### /llm added latency over calling the upstream directly (fake upstream)", "",
                               "| upstream | concurrency | direct p50 | via /llm p50 | added p50 | direct p95 | via /llm p95 |",
                               "|---|---|---|---|---|---|---|", *bench_llm_both(service, paths[size], voices, fake_url), ""]
                report += [f"Peak RSS of `zapvoice serve` with Whisper {size} + two medium voices, after the runs: "
                           f"**{service.peak_rss_mb():.0f} MB**", ""]
            finally:
                service.stop()
    finally:
        fake.terminate()
    print("\n".join(report))


if __name__ == "__main__":
    main()
