"""Speech to text with faster-whisper, tuned for short phone utterances.

Defaults favour latency on a small CPU: greedy decoding, no temperature fallback, no
timestamps and no conditioning on earlier text (each utterance stands alone); a decode that
loops is cut where it started repeating (providers.decoding_loops). The model is
loaded once, warmed, and shared; transcriptions (with the decoding and the speech check before
them) run in a bounded worker off the event loop.

Short window (stt.short_window, on by default): Whisper pads every utterance to 30 s and encodes
all of it, though a phone utterance fills 1-7 s of it. CTranslate2's encoder takes fewer mel
frames, so the utterance is encoded with `short_window_pad_s` after it and at least
`short_window_min_s` in all (a window much shorter than the training one makes greedy decoding
loop), and decoding is capped from its duration. Any sign of a bad decode (a loop, by the loop
guard with its compression-ratio test, the token cap reached, a likely no-speech, a language detected with low
confidence, nothing decoded) and the utterance is decoded again on the padded window.
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
from zapvoice.providers.whisper_batch import Utterance, decode_together
from zapvoice.providers.workers import BatchingWorker

from zapvoice.audio import PIPELINE_RATE
from zapvoice.settings import STTSettings

log = logging.getLogger(__name__)

LANGUAGES = frozenset(_LANGUAGE_CODES)
_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MEL_FRAMES_PER_S = 100  # Whisper's 10 ms feature hop
PADDED_FRAMES = 3000  # the 30 s window Whisper was trained on
SHORT_WINDOW_BASE_TOKENS = 12  # the token cap is this plus short_window_tokens_per_s per second
WHISPER_MAX_LENGTH = 448  # Whisper's text context: prompt plus decoded tokens
NO_SPEECH_PROBABILITY = 0.6  # faster-whisper's no_speech_threshold
MIN_LANGUAGE_PROBABILITY = 0.5  # faster-whisper's language_detection_threshold


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

    def transcribe(self, *args, encode_frames: int | None = None, **kwargs):
        """`encode_frames`: encode only the first this many mel frames of the (single) window, for the
        language detection and the decode alike; None encodes the padded 30 s window."""
        self._detection.encoding = None  # never a leftover from a call that failed midway
        self._detection.frames = encode_frames
        return super().transcribe(*args, **kwargs)

    def detect_language(self, *args, **kwargs):
        self._detection.capturing, self._detection.encoding = True, None
        try:
            return super().detect_language(*args, **kwargs)
        finally:
            self._detection.capturing = False

    def encode(self, features: np.ndarray):
        frames = getattr(self._detection, "frames", None)
        if frames is not None and features.shape[-1] > frames:
            features = np.ascontiguousarray(features[..., :frames])
        encoding = super().encode(features)
        if getattr(self._detection, "capturing", False):
            self._detection.encoding = encoding
        return encoding

    def generate_segments(self, features, tokenizer, options, log_progress=False, encoder_output=None):
        single_window = features.shape[-1] - 1 <= self.feature_extractor.nb_max_frames
        detected, self._detection.encoding = getattr(self._detection, "encoding", None), None
        if encoder_output is None and single_window:
            encoder_output = detected
        if not single_window:
            self._detection.frames = None  # a short window is for one utterance, never for 30 s steps
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
        self.worker: BatchingWorker[tuple[Callable[[], np.ndarray], str | None], Transcript] = BatchingWorker(
            "stt", settings.concurrency, settings.queue, settings.max_batch, self._transcribe_batch)

    def warm_up(self) -> None:
        """One decode so the first caller does not pay for lazy initialisation."""
        quiet_noise = np.random.default_rng(0).normal(0, 0.01, PIPELINE_RATE).astype(np.float32)
        self._decode(quiet_noise, "en")

    async def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        return await self.transcribe_upload(lambda: samples, language)

    async def transcribe_upload(self, decode: Callable[[], np.ndarray], language: str | None = None) -> Transcript:
        """`decode` (an upload to samples), the speech check and Whisper all run in an admitted worker slot:
        a request the worker refuses costs nothing, and none of it runs on the event loop."""
        language = normalize_language(language) or self.default_language
        return await self.worker.run_batched((decode, language))

    def _transcribe_batch(self, requests: list[tuple[Callable[[], np.ndarray], str | None]]
                          ) -> list[Transcript | BaseException]:
        """Each request's upload decoded and speech-checked on its own (a bad one fails alone), then the short
        utterances decoded together and the rest one by one."""
        heard = [self._checked(decode) for decode, _ in requests]
        spoken = {i: (one[1], requests[i][1]) for i, one in enumerate(heard)
                  if not isinstance(one, BaseException) and one[1] is not None}
        texts = dict(zip(spoken, self._decode_many(list(spoken.values())), strict=True))
        transcripts: list[Transcript | BaseException] = []
        for i, ((_, language), one) in enumerate(zip(requests, heard, strict=True)):
            if isinstance(one, BaseException):
                transcripts.append(one)
            elif i in texts:
                transcripts.append(Transcript(*texts[i], one[0], speech=True))
            else:
                transcripts.append(Transcript("", language, one[0], speech=False))
        return transcripts

    def _checked(self, decode: Callable[[], np.ndarray]) -> tuple[float, np.ndarray | None] | BaseException:
        """The upload's duration and its speech (None: the speech check found none), or why it is unreadable."""
        try:
            samples = decode()
        except Exception as exc:  # noqa: BLE001 - this request's own error (a 4xx for an unreadable upload)
            return exc
        s = self.settings
        span = check_speech(samples, s.speech_check, s.silence_dbfs, s.vad_threshold)
        return samples.size / PIPELINE_RATE, None if span is None else samples[span.start : span.end]

    def _transcribe(self, samples: np.ndarray, language: str | None) -> Transcript:
        result = self._transcribe_batch([(lambda: samples, language)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _decode_many(self, utterances: list[tuple[np.ndarray, str | None]]) -> list[tuple[str, str]]:
        s = self.settings
        windows = [self._short_window(samples) for samples, _ in utterances]
        short = [(i, window) for i, window in enumerate(windows) if window is not None]
        if len(short) < 2 or s.beam_size > 1 or s.temperature_fallback:
            return [self._decode(samples, language) for samples, language in utterances]
        together = dict(zip([i for i, _ in short], self._decode_together(
            [(*utterances[i], window) for i, window in short]), strict=True))
        return [together.get(i) or self._decode_padded(*utterances[i]) for i in range(len(utterances))]

    def _decode_together(self, utterances: list[tuple[np.ndarray, str | None, tuple[int, int]]]
                         ) -> list[tuple[str, str] | None]:
        """One Whisper pass for several short windows; None for each decode that looks degenerate."""
        decoded = decode_together(self.model, [
            Utterance(samples, language, frames, ctranslate2_max_new_tokens(cap, self._prompt_tokens))
            for samples, language, (frames, cap) in utterances])
        verdicts: list[tuple[str, str] | None] = []
        for (samples, _, (_, cap)), one in zip(utterances, decoded, strict=True):
            doubt = degenerate(one.text, [one], one.language_probability, samples.size / PIPELINE_RATE, cap)
            if doubt is not None:
                log.info("short window decode in a batch looked degenerate (%s: %r); decoding the padded window",
                         doubt, one.text)
            verdicts.append((one.text, one.language) if doubt is None else None)
        return verdicts

    @property
    def _prompt_tokens(self) -> int:
        """Start, language, task and no-timestamps; an English-only model has no language or task token."""
        return 4 if self.model.model.is_multilingual else 2

    def _short_window(self, samples: np.ndarray) -> tuple[int, int] | None:
        """The short window's mel frames and token cap for this utterance, or None for the padded window."""
        s = self.settings
        seconds = samples.size / PIPELINE_RATE
        frames = short_window_frames(seconds, s) if s.short_window else None
        if frames is None:
            return None
        return frames, min(s.max_new_tokens, round(SHORT_WINDOW_BASE_TOKENS + s.short_window_tokens_per_s * seconds))

    def _decode(self, samples: np.ndarray, language: str | None) -> tuple[str, str]:
        seconds = samples.size / PIPELINE_RATE
        window = self._short_window(samples)
        if window is not None:
            frames, cap = window
            segments, info = self._whisper(samples, language, cap, frames)
            text = _joined(segments)
            doubt = degenerate(text, segments, info.language_probability if language is None else 1.0,
                               seconds, cap)
            if doubt is None:
                return text, info.language
            log.info("short window decode looked degenerate (%s: %r); decoding the padded window", doubt, text)
        return self._decode_padded(samples, language)

    def _decode_padded(self, samples: np.ndarray, language: str | None) -> tuple[str, str]:
        seconds = samples.size / PIPELINE_RATE
        segments, info = self._whisper(samples, language, self.settings.max_new_tokens, None)
        text = _joined(segments)
        cut = cut_loop(text, seconds)
        if cut is not None:
            log.warning("decoding looped (%d characters for %.1f s of audio); kept %r", len(text), seconds, cut)
            text = cut
        return text, info.language

    def _whisper(self, samples: np.ndarray, language: str | None, tokens: int, frames: int | None):
        """At most `tokens` decoded tokens (see `ctranslate2_max_new_tokens`)."""
        s = self.settings
        segments, info = self.model.transcribe(
            samples,
            encode_frames=frames,
            language=language,
            beam_size=s.beam_size,
            best_of=s.beam_size,
            temperature=_FALLBACK_TEMPERATURES if s.temperature_fallback else 0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            max_new_tokens=ctranslate2_max_new_tokens(tokens, self._prompt_tokens),
        )
        return list(segments), info

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


def short_window_frames(seconds: float, settings: STTSettings) -> int | None:
    """Mel frames to encode for `seconds` of audio (even: the encoder's convolution has stride 2), or None
    when that is no shorter than the padded window."""
    window_s = max(settings.short_window_min_s, seconds + settings.short_window_pad_s)
    frames = 2 * -(-round(window_s * MEL_FRAMES_PER_S) // 2)
    return frames if frames < PADDED_FRAMES else None


def ctranslate2_max_new_tokens(tokens: int, prompt: int) -> int:
    """The `max_new_tokens` that lets Whisper decode `tokens` tokens after a `prompt`-token prompt. faster-whisper
    passes max_length = prompt + max_new_tokens, but CTranslate2 stops a Whisper decode at
    min(max_length // 2, max_length - prompt) tokens (OpenNMT/CTranslate2#1856: OpenAI's half-context limit), so
    128 allowed only 66 and a dense utterance was cut or, on the short window, redone on the padded one."""
    return min(max(2 * tokens - prompt, tokens), WHISPER_MAX_LENGTH - prompt)


def _joined(segments) -> str:
    return " ".join(segment.text.strip() for segment in segments).strip()


def degenerate(text: str, segments, language_probability: float, seconds: float, cap: int) -> str | None:
    """Why a short-window decode should not be trusted, or None: the loop guard's signs (which include
    Whisper's compression-ratio test), Whisper's no-speech and language thresholds, and the token cap
    reached (the decode was cut short, or was running away)."""
    if not text:
        return "nothing decoded"
    if cut_loop(text, seconds) is not None:
        return "a loop"
    if any(len(segment.tokens) >= cap for segment in segments):
        return "the token cap reached"
    if any(segment.no_speech_prob > NO_SPEECH_PROBABILITY for segment in segments):
        return "a likely no-speech"
    if language_probability < MIN_LANGUAGE_PROBABILITY:
        return "an unsure language detection"
    return None


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
