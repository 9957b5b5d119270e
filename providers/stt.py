"""Speech to text with faster-whisper, tuned for short phone utterances.

Defaults favour latency on a small CPU: greedy decoding, no temperature fallback, no
timestamps and no conditioning on earlier text (each utterance stands alone); a decode that
loops is cut where it started repeating (providers.decoding_loops). The model is
loaded once, warmed, and shared; transcriptions (with the decoding and the speech check before
them) run in a bounded worker off the event loop.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES
from zapvoice.providers.contracts import Transcript
from zapvoice.providers.decoding_loops import cut_loop
from zapvoice.providers.errors import ProviderError
from zapvoice.providers.speech_check import check_speech
from zapvoice.providers.workers import BoundedWorker

from zapvoice.audio import PIPELINE_RATE
from zapvoice.settings import STTSettings

log = logging.getLogger(__name__)

LANGUAGES = frozenset(_LANGUAGE_CODES)
_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def normalize_language(code: str | None) -> str | None:
    """'pt-BR' -> 'pt'; None or '' means auto-detect; an unknown code is a 422."""
    if not code:
        return None
    short = code.strip().lower().replace("_", "-").split("-")[0]
    if short not in LANGUAGES:
        raise ProviderError(422, f"unknown language {code!r}; use a Whisper language code such as pt or en")
    return short


class SingleEncodeWhisper(WhisperModel):
    """faster-whisper, minus the second encoder pass when it detects the language.

    `transcribe(language=None)` encodes the first 30 s window to detect the language, drops that
    encoding, then encodes the same window again to decode it: on a phone utterance (one window)
    that doubles the dominant cost (0.4 s of 1 s on Whisper base, 2 cores). The two inputs differ
    only in the last 10 ms feature frame, so the detection encoding is handed to the decoder.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._detection = threading.local()

    def transcribe(self, *args, **kwargs):
        self._detection.encoding = None  # never a leftover from a call that failed midway
        return super().transcribe(*args, **kwargs)

    def detect_language(self, *args, **kwargs):
        self._detection.capturing, self._detection.encoding = True, None
        try:
            return super().detect_language(*args, **kwargs)
        finally:
            self._detection.capturing = False

    def encode(self, features: np.ndarray):
        encoding = super().encode(features)
        if getattr(self._detection, "capturing", False):
            self._detection.encoding = encoding
        return encoding

    def generate_segments(self, features, tokenizer, options, log_progress=False, encoder_output=None):
        single_window = features.shape[-1] - 1 <= self.feature_extractor.nb_max_frames
        detected, self._detection.encoding = getattr(self._detection, "encoding", None), None
        if encoder_output is None and single_window:
            encoder_output = detected
        return super().generate_segments(features, tokenizer, options, log_progress, encoder_output)


class WhisperSTT:
    def __init__(self, model_dir: Path, settings: STTSettings):
        self.settings = settings
        self.model = SingleEncodeWhisper(
            str(model_dir),
            device="cpu",
            compute_type=settings.whisper_compute_type,
            cpu_threads=settings.whisper_cpu_threads or os.cpu_count() or 1,
            num_workers=settings.concurrency,
            local_files_only=True,
        )
        self.default_language = normalize_language(settings.language)
        self.worker = BoundedWorker("stt", settings.concurrency, settings.queue)

    def warm_up(self) -> None:
        """One decode so the first caller does not pay for lazy initialisation."""
        quiet_noise = np.random.default_rng(0).normal(0, 0.01, PIPELINE_RATE).astype(np.float32)
        self._decode(quiet_noise, "en")

    async def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        return await self.transcribe_upload(lambda: samples, language)

    async def transcribe_upload(self, decode: Callable[[], np.ndarray], language: str | None = None) -> Transcript:
        """`decode` (an upload to samples), the speech check and Whisper all run in one admitted worker slot:
        a request the worker refuses costs nothing, and none of it runs on the event loop."""
        language = normalize_language(language) or self.default_language
        return await self.worker.run(lambda: self._transcribe(decode(), language))

    def _transcribe(self, samples: np.ndarray, language: str | None) -> Transcript:
        s = self.settings
        duration = samples.size / PIPELINE_RATE
        span = check_speech(samples, s.speech_check, s.silence_dbfs, s.vad_threshold)
        if span is None:
            return Transcript("", language, duration, speech=False)
        text, detected = self._decode(samples[span.start : span.end], language)
        return Transcript(text, detected, duration, speech=True)

    def _decode(self, samples: np.ndarray, language: str | None) -> tuple[str, str]:
        s = self.settings
        segments, info = self.model.transcribe(
            samples,
            language=language,
            beam_size=s.beam_size,
            best_of=s.beam_size,
            temperature=_FALLBACK_TEMPERATURES if s.temperature_fallback else 0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            max_new_tokens=s.max_new_tokens,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        cut = cut_loop(text, samples.size / PIPELINE_RATE)
        if cut is not None:
            log.warning("decoding looped (%d characters for %.1f s of audio); kept %r", len(text),
                        samples.size / PIPELINE_RATE, cut)
            text = cut
        return text, info.language

    async def transcribe_note(self, decode: Callable[[], np.ndarray], language: str | None = None, *,
                              task: str = "transcribe", words: bool = False, prompt: str | None = None,
                              temperature: float | None = None) -> Note:
        """A recording of any length (a voice note, an OpenAI-API upload) with segment timestamps, and word ones
        when `words`: a separate decode from the utterance fast path (timestamps on, every 30 s window, the
        previous window's text as context). `task` "translate" gives English. Same worker as `transcribe`."""
        language = normalize_language(language) or self.default_language
        return await self.worker.run(lambda: self._transcribe_note(decode(), language, task, words, prompt,
                                                                   temperature))

    def _transcribe_note(self, samples: np.ndarray, language: str | None, task: str, words: bool,
                         prompt: str | None, temperature: float | None) -> Note:
        s = self.settings
        duration = samples.size / PIPELINE_RATE
        if check_speech(samples, s.speech_check, s.silence_dbfs, s.vad_threshold) is None:
            return Note("", language, duration, ())
        fallback = _FALLBACK_TEMPERATURES if s.temperature_fallback else 0.0
        pieces, info = self.model.transcribe(
            samples, language=language, task=task, beam_size=s.beam_size, best_of=s.beam_size,
            temperature=fallback if temperature is None else temperature, initial_prompt=prompt or None,
            condition_on_previous_text=True, without_timestamps=False, word_timestamps=words, vad_filter=False,
        )
        segments = tuple(NoteSegment(
            piece.start, piece.end, piece.text.strip(), tuple(piece.tokens), piece.temperature or 0.0,
            piece.avg_logprob, piece.compression_ratio, piece.no_speech_prob,
            tuple(NoteWord(w.start, w.end, w.word.strip(), w.probability) for w in piece.words or ()),
        ) for piece in pieces)
        text = " ".join(segment.text for segment in segments if segment.text).strip()
        return Note(text, info.language, duration, segments)

    def close(self) -> None:
        self.worker.shutdown()


@dataclass(frozen=True)
class NoteWord:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class NoteSegment:
    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: tuple[NoteWord, ...]


@dataclass(frozen=True)
class Note:
    """A long recording's transcript (or English translation), with the segments and words that make it up."""

    text: str
    language: str | None
    duration_s: float
    segments: tuple[NoteSegment, ...]
