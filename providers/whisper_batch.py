"""Several short-window utterances decoded by Whisper in one pass.

When calls end their turns together, their utterances wait for the one STT engine. Decoding them as
one batch costs little more than decoding the longest: most of a greedy decoder step is fixed
overhead, not arithmetic (benchmarks/bench_stt_batch.py measures it). The encoder gets the
utterances' mel frames side by side, each padded as Whisper pads to the batch's longest short window
(for utterances of a few seconds that is `stt.short_window_min_s`, the window each has alone); the
language of those without one is detected on the same encoding; one `generate` call decodes all of
them with faster-whisper's own greedy options. What this returns is judged by the caller exactly as
a single decode is (providers.stt.degenerate), and redone alone on the padded window if it looks
wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_ctranslate2_storage, get_suppressed_tokens


@dataclass(frozen=True)
class Utterance:
    samples: np.ndarray
    language: str | None  # None: detect it
    frames: int  # mel frames of its short window
    max_new_tokens: int  # faster-whisper's meaning (see providers.stt.ctranslate2_max_new_tokens)


@dataclass(frozen=True)
class Decoded:
    """One utterance's decode, with what providers.stt.degenerate needs to judge it."""

    text: str
    language: str
    language_probability: float
    tokens: list[int]
    no_speech_prob: float


def decode_together(model: WhisperModel, utterances: list[Utterance]) -> list[Decoded]:
    window = max(utterance.frames for utterance in utterances)
    features = np.stack([pad_or_trim(model.feature_extractor(u.samples)[..., :-1])[..., :window] for u in utterances])
    encoded = model.model.encode(get_ctranslate2_storage(np.ascontiguousarray(features)), to_cpu=False)
    languages = [(u.language if model.model.is_multilingual else "en", 1.0) for u in utterances]
    if any(language is None for language, _ in languages):
        detected = model.model.detect_language(encoded)
        languages = [(language, 1.0) if language else (found[0][0][2:-2], found[0][1])
                     for (language, _), found in zip(languages, detected, strict=True)]
    tokenizers = [Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
                  for language, _ in languages]
    prompts = [model.get_prompt(tokenizer, [], without_timestamps=True) for tokenizer in tokenizers]
    results = model.model.generate(
        encoded, prompts,
        beam_size=1, patience=1, length_penalty=1, repetition_penalty=1, no_repeat_ngram_size=0,
        max_length=max(len(prompt) + u.max_new_tokens for prompt, u in zip(prompts, utterances, strict=True)),
        return_scores=True, return_no_speech_prob=True, suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizers[0], (-1,)),
        max_initial_timestamp_index=round(1.0 / model.time_precision),
    )
    return [Decoded(tokenizer.decode(result.sequences_ids[0]).strip(), tokenizer.language_code, probability,
                    result.sequences_ids[0], result.no_speech_prob)
            for result, tokenizer, (_, probability) in zip(results, tokenizers, languages, strict=True)]
