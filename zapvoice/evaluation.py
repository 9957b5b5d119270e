"""`zapvoice eval`: word error rate and latency of the configured STT on an operator's own recordings.

An evaluation set is a folder of `name.wav` (any format soundfile reads) with `name.txt` beside
each, or a TSV file of `audio path<TAB>transcript` lines (paths relative to the TSV). Every clip
goes through the same STT interface the service and the agent use, so the figures are what a
caller would get: Whisper in this process (one model after another with `--models`), or a
provider's /stt over HTTP (`--stt-url`). `--phone-line` first passes each clip through an 8 kHz
G.711 line, as a call through a telephony gateway would.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from zapvoice.audio import PIPELINE_RATE, decode_audio, from_int16, resample, to_int16
from zapvoice.providers.contracts import SpeechToText
from zapvoice.word_errors import NO_ERRORS, WordErrors, word_errors

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
PhoneLine = Literal["mulaw", "alaw"]  # the G.711 lines `zapvoice eval --phone-line` can put clips through
PHONE_LINES: tuple[PhoneLine, ...] = ("mulaw", "alaw")
_PHONE_RATE = 8000
_MAX_CLIP_S = 600.0


class EvalSetError(ValueError):
    """The evaluation set cannot be read; the message says which file and why."""


@dataclass(frozen=True)
class EvalClip:
    name: str
    audio: Path
    text: str


@dataclass(frozen=True)
class ClipResult:
    clip: EvalClip
    heard: str
    seconds: float
    latency_s: float
    errors: WordErrors


@dataclass(frozen=True)
class EvalReport:
    """One STT's results on a set, clip by clip."""

    stt: str
    results: list[ClipResult]

    @property
    def errors(self) -> WordErrors:
        return sum((result.errors for result in self.results), NO_ERRORS)

    def latency_percentile(self, percent: int) -> float:
        """Latency at `percent` (nearest rank, so p95 of 10 clips is the slowest)."""
        ordered = sorted(result.latency_s for result in self.results)
        return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]

    @property
    def real_time_factor(self) -> float:
        audio = sum(result.seconds for result in self.results)
        return sum(result.latency_s for result in self.results) / audio if audio else 0.0


def load_eval_set(source: Path) -> list[EvalClip]:
    """The clips of a folder (name.wav + name.txt) or of a TSV file, sorted by name."""
    if source.is_dir():
        clips = []
        for audio in sorted(p for p in source.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
            transcript = audio.with_suffix(".txt")
            if not transcript.is_file():
                raise EvalSetError(f"{audio} has no transcript: put the words said in {transcript.name} beside it")
            clips.append(EvalClip(audio.stem, audio, transcript.read_text(encoding="utf-8").strip()))
    elif source.is_file():
        clips = []
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            path, tab, text = line.partition("\t")
            if not tab:
                raise EvalSetError(f"{source} line {number}: write the audio path, a tab, then the transcript")
            audio = (source.parent / path.strip()).resolve()
            if not audio.is_file():
                raise EvalSetError(f"{source} line {number}: {audio} does not exist")
            clips.append(EvalClip(audio.stem, audio, text.strip()))
    else:
        raise EvalSetError(f"{source} does not exist: give a folder of name.wav + name.txt, or a TSV file")
    if not clips:
        raise EvalSetError(f"{source} holds no clips ({', '.join(AUDIO_SUFFIXES)} with a .txt beside each)")
    return clips


def read_clip(clip: EvalClip, phone_line: PhoneLine | None = None) -> np.ndarray:
    """The clip as float32 16 kHz mono, through an 8 kHz G.711 line first when `phone_line` is set."""
    try:
        samples, _ = decode_audio(clip.audio.read_bytes(), None, _MAX_CLIP_S)
    except ValueError as exc:
        raise EvalSetError(f"{clip.audio}: {exc}") from exc
    if phone_line is None:
        return samples
    from zapvoice.agent.gateway.codec import decode, encode  # the gateway's own G.711 tables

    narrow = to_int16(resample(samples, PIPELINE_RATE, _PHONE_RATE))
    return resample(from_int16(decode(encode(narrow, phone_line), phone_line)), _PHONE_RATE, PIPELINE_RATE)


async def evaluate(stt: SpeechToText, name: str, clips: list[EvalClip], language: str | None = None,
                   phone_line: PhoneLine | None = None, progress: Callable[[], None] = lambda: None) -> EvalReport:
    """Transcribe every clip in turn (one at a time, as a quiet server would) and score it."""
    results = []
    for clip in clips:
        samples = read_clip(clip, phone_line)
        started = time.perf_counter()
        transcript = await stt.transcribe(samples, language)
        latency = time.perf_counter() - started
        results.append(ClipResult(clip, transcript.text, samples.size / PIPELINE_RATE, latency,
                                  word_errors(clip.text, transcript.text, language or transcript.language or "en")))
        progress()
    return EvalReport(name, results)


def format_report(report: EvalReport) -> str:
    """Per clip and in total: WER, latency and what was heard."""
    lines = [f"## {report.stt}", "| clip | audio s | latency ms | WER % | heard |", "|---|---:|---:|---:|---|"]
    for result in report.results:
        lines.append(f"| {result.clip.name} | {result.seconds:.1f} | {result.latency_s * 1000:.0f} | "
                     f"{result.errors.rate * 100:.1f} | {result.heard} |")
    lines.append(f"| **total** ({len(report.results)} clips, {report.errors.words} words) | "
                 f"{sum(r.seconds for r in report.results):.1f} | p50 {report.latency_percentile(50) * 1000:.0f} | "
                 f"**{report.errors.rate * 100:.1f}** | {report.errors.errors} errors |")
    return "\n".join(lines)


def format_comparison(reports: list[EvalReport]) -> str:
    """One line per STT, for choosing what a server can afford."""
    lines = ["| STT | WER % | errors / words | p50 ms | p95 ms | mean ms | real-time factor |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for report in reports:
        errors = report.errors
        mean = statistics.fmean(r.latency_s for r in report.results)
        lines.append(f"| {report.stt} | {errors.rate * 100:.1f} | {errors.errors} / {errors.words} | "
                     f"{report.latency_percentile(50) * 1000:.0f} | {report.latency_percentile(95) * 1000:.0f} | "
                     f"{mean * 1000:.0f} | {report.real_time_factor:.3f} |")
    return "\n".join(lines)
