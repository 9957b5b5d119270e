"""Hostile requests against `zapvoice serve` (issue 10): what each one costs the server and everyone else.

    python benchmarks/hostile_requests.py [--only flac-bomb,vorbis-255ch,...]

Each attack gets a fresh `zapvoice serve` subprocess on offline test models (a scripted
Whisper and sine voices, built once into .bench-models/hostile/), so the peak RSS (VmHWM)
belongs to that attack. While it runs, a probe GETs /health every 20 ms: its slowest answer
is how long the event loop stalled. Prints one markdown table per item of the issue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_providers import free_port, wait_ready  # noqa: E402
from benchmarks.publish import provenance, publish, start  # noqa: E402
from tests.model_builders.piper_voice import build_sine_voice  # noqa: E402
from tests.model_builders.whisper import build_scripted_whisper  # noqa: E402
from tests.support.speech import speak  # noqa: E402
from zapvoice.audio import PIPELINE_RATE, wav_bytes  # noqa: E402

MODELS = ROOT / ".bench-models" / "hostile"
TOKEN = "hostile-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROBE_EVERY_S = 0.02


def build_models() -> tuple[Path, list[Path]]:
    whisper = MODELS / "whisper"
    if not (whisper / "model.bin").exists():
        build_scripted_whisper(whisper)
    voices = [MODELS / "voices" / f"{name}.onnx" for name in ("pt_BR-test-medium", "en_US-test-medium")]
    for path, espeak in zip(voices, ("pt-br", "en-us")):
        if not path.exists():
            build_sine_voice(path.parent, name=path.stem, espeak_voice=espeak)
    return whisper, voices


def silent_file(path: Path, rate: int, channels: int, seconds: int, fmt: str, subtype: str) -> bytes:
    """Silence written second by second (cached: the 255-channel Vorbis takes seconds to encode)."""
    if not path.exists():
        block = np.zeros((rate, channels), np.float32)
        with soundfile.SoundFile(path, "w", rate, channels, format=fmt, subtype=subtype) as sound:
            for _ in range(seconds):
                sound.write(block)
    return path.read_bytes()


class Server:
    """`zapvoice serve` as a user runs it, with a /health probe thread and its memory figures."""

    def __init__(self, whisper: Path, voices: list[Path]):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "zapvoice"), "serve", "--port", self.url.rsplit(":", 1)[1],
             "-c", f"service.token={TOKEN}", "--whisper-model", str(whisper), "--voices", ",".join(map(str, voices)),
             "--llm-url", "http://127.0.0.1:9/v1"],
            env={**os.environ, "ZAPVOICE_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1"},
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_ready(f"{self.url}/ready", self.process)
        self.base_rss_mb = self._status_mb("VmRSS")
        self._probing = threading.Event()
        self._probe = threading.Thread(target=self._probe_health, daemon=True)
        self.health_ms: list[float] = []

    def _status_mb(self, key: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _probe_health(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while True:  # one probe more after the attack, so a quick one is measured too
                attacking = self._probing.is_set()
                started = time.perf_counter()
                http.get("/health").raise_for_status()
                took = time.perf_counter() - started
                self.health_ms.append(took * 1000)
                if not attacking:
                    return
                time.sleep(max(0.0, PROBE_EVERY_S - took))

    def __enter__(self) -> Server:
        self._probing.set()
        self._probe.start()
        return self

    def __exit__(self, *_) -> None:
        self._probing.clear()
        self._probe.join()
        self.peak_rss_mb = self._status_mb("VmHWM")
        self.process.terminate()
        self.process.wait(30)

    @property
    def figures(self) -> str:
        """'max /health ms | RSS base -> peak MB' of the attack that just ran."""
        return f"{max(self.health_ms, default=float('nan')):.0f} | {self.base_rss_mb:.0f} → {self.peak_rss_mb:.0f}"


@dataclass
class Answer:
    status: int | str
    is_json: bool
    seconds: float
    body: str = ""
    headers: dict = field(default_factory=dict)

    @classmethod
    def of(cls, send) -> Answer:
        started = time.perf_counter()
        try:
            response = send()
        except httpx.HTTPError as exc:
            return cls(type(exc).__name__, False, time.perf_counter() - started)
        seconds = time.perf_counter() - started
        try:
            body = json.dumps(response.json(), ensure_ascii=False)[:90]
            is_json = True
        except ValueError:
            body, is_json = f"{len(response.content)} bytes {response.headers.get('content-type')}", False
        return cls(response.status_code, is_json, seconds, body, dict(response.headers))

    def cells(self) -> str:
        return f"{self.status} | {'yes' if self.is_json else 'no'} | {self.seconds:.2f}"


HEADER = ("| attack | status | JSON | answer s | max /health ms | RSS base → peak MB | body |\n"
          "|---|---|---|---|---|---|---|")


def one_request(name: str, models, send) -> str:
    with Server(*models) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as http:
        answer = Answer.of(lambda: send(http))
    return f"| {name} | {answer.cells()} | {server.figures} | `{answer.body}` |"


def item_decompression_bombs(models) -> list[str]:
    MODELS.mkdir(parents=True, exist_ok=True)
    flac = silent_file(MODELS / "bomb-8ch-655350hz-59s.flac", 655350, 8, 59, "FLAC", "PCM_16")
    vorbis = silent_file(MODELS / "bomb-255ch-16khz-58s.ogg", 16000, 255, 58, "OGG", "VORBIS")
    speech = wav_bytes(speak("Olá, eu gostaria de marcar uma consulta."), PIPELINE_RATE)
    rows = []
    for name, body in ((f"normal 16 kHz WAV ({len(speech) // 1024} KB)", speech),
                       (f"FLAC 8 ch × 655,350 Hz × 59 s ({len(flac) // 1024} KB)", flac),
                       (f"Vorbis 255 ch × 16 kHz × 58 s ({len(vorbis) // 1024} KB)", vorbis)):
        rows.append(one_request(name, models, lambda http, body=body: http.post(
            "/stt", content=body, headers={"Content-Type": "audio/wav"})))
    return rows


def item_llm_limits(models) -> list[str]:
    many = json.dumps({"messages": [{"role": "user", "content": ""}] * 300_000}).encode()
    huge = json.dumps({"messages": [{"role": "user", "content": "x" * 10_000_000}]}).encode()
    nothings = json.dumps({"messages": [{}] * 200_000}, separators=(",", ":")).encode()  # fits a 640 KB limit
    return [one_request(f"/llm {label} ({len(body) / 1e6:.1f} MB)", models, lambda http, body=body: http.post(
        "/llm", content=body, headers={"Content-Type": "application/json"}))
        for label, body in (("300,000 empty messages", many), ("one 10 M-char message", huge),
                            ("200,000 {} messages", nothings))]


def item_stt_admission(models, concurrent: int = 200) -> list[str]:
    body = wav_bytes(speak("Olá, eu gostaria de marcar uma consulta para amanhã."), PIPELINE_RATE)

    async def burst(url: str, headers: dict) -> tuple[list[Answer], float]:
        limits = httpx.Limits(max_connections=concurrent + 10, max_keepalive_connections=concurrent + 10)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as http:
            async def post() -> Answer:
                started = time.perf_counter()
                response = await http.post("/stt", content=body, headers={"Content-Type": "audio/wav"})
                return Answer(response.status_code, response.headers.get("content-type") == "application/json",
                              time.perf_counter() - started, headers=dict(response.headers))
            started = time.perf_counter()
            answers = await asyncio.gather(*(post() for _ in range(concurrent)))
            return answers, time.perf_counter() - started

    rows = ["| concurrent /stt | statuses | all JSON | median refusal s | median 200 s | burst drained s "
            "| Retry-After s | max /health ms | RSS base → peak MB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for label, headers in (("no token (401: the floor, transport and client)", {}), ("with the token", AUTH)):
        with Server(*models) as server:
            answers, drained_s = asyncio.run(burst(server.url, headers))
        rows.append(burst_row(f"{concurrent} {label}", answers, drained_s, server))
    return rows


def burst_row(label: str, answers: list[Answer], drained_s: float, server: Server) -> str:
    statuses = Counter(a.status for a in answers)
    refused = [a for a in answers if a.status in (401, 503)]
    served = [a for a in answers if a.status == 200]
    retry = sorted({int(a.headers["retry-after"]) for a in refused if "retry-after" in a.headers})

    def median(values: list[Answer]) -> str:
        return f"{statistics.median(a.seconds for a in values):.2f}" if values else "-"

    return (f"| {label} | {', '.join(f'{s}×{n}' for s, n in sorted(statuses.items()))} "
            f"| {'yes' if all(a.is_json for a in answers) else 'no'} | {median(refused)} | {median(served)} "
            f"| {drained_s:.2f} | {retry[0] if retry else '-'}-{retry[-1] if retry else '-'} | {server.figures} |")


def item_tts_control_characters(models) -> list[str]:
    rows = []
    with Server(*models) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
        for label, text in (("NUL inside", "Olá\u0000 mundo"), ("only NUL", "\u0000"),
                            ("ESC and BEL", "Olá \x1b[31m mundo\x07"), ("lone surrogate", "Olá \ud800 mundo")):
            hostile = Answer.of(lambda text=text: http.post(
                "/tts", content=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}))
            after = Answer.of(lambda: http.post("/tts", json={"text": "Tudo bem?"}))
            rows.append(f"| /tts {label} | {hostile.cells()} | next on the connection: {after.status} "
                        f"| `{hostile.body}` |")
    return ["| attack | status | JSON | answer s | keep-alive | body |", "|---|---|---|---|---|---|", *rows,
            f"\nmax /health ms | RSS base → peak MB: {server.figures}"]


ITEMS = {
    "bombs": ("1. Decompression bombs on /stt", item_decompression_bombs, True),
    "llm": ("7. /llm limits", item_llm_limits, True),
    "admission": ("8. /stt admission under 200 concurrent requests", item_stt_admission, False),
    "tts": ("5. /tts control characters", item_tts_control_characters, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ITEMS), help=f"comma-separated: {', '.join(ITEMS)}")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update BENCHMARKS.md")
    args = parser.parse_args()
    began = start()
    models = build_models()
    report = []
    for key in args.only.split(","):
        title, run, plain_rows = ITEMS[key]
        rows = run(models)
        report += ["", f"### {title}", "", *([HEADER, *rows] if plain_rows else rows)]
        print(f"{title}: done", file=sys.stderr, flush=True)
    publish("hostile_requests", [*provenance(began), *report], write=not args.no_write)


if __name__ == "__main__":
    main()
