"""Text to speech with Piper voices, several loaded at once, with a cache for repeated texts.

Voices are addressed by name only (the keys of `voices`), so a request can never make the
service open a file. Synthesis runs in a bounded worker off the event loop.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from piper import PiperVoice, SynthesisConfig
from zapvoice.providers.contracts import Speech
from zapvoice.providers.errors import ProviderError, UnknownVoice
from zapvoice.providers.speech_cache import SpeechCache
from zapvoice.providers.spoken_text import to_spoken
from zapvoice.providers.workers import BoundedWorker

from zapvoice.audio import PIPELINE_RATE, resample, to_int16
from zapvoice.settings import TTSSettings

log = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.5, 2.0


class PiperTTS:
    def __init__(self, voice_files: dict[str, Path], settings: TTSSettings):
        if not voice_files:
            raise ValueError("at least one voice is needed")
        self.voices = {name: PiperVoice.load(path) for name, path in voice_files.items()}
        self.default_voice = next(iter(self.voices))
        self.max_chars = settings.max_chars
        self.volume = settings.volume
        self.noise_scale, self.noise_w_scale = settings.noise_scale, settings.noise_w_scale
        self.worker = BoundedWorker("tts", settings.concurrency, settings.queue)
        self.cache = SpeechCache(settings.cache_bytes)

    def voice_rate(self, name: str) -> int:
        return self.voices[name].config.sample_rate

    def resolve_voice(self, requested: str | None) -> str:
        """An exact voice name, or a language such as 'pt', 'pt-BR' or 'en_US' (first voice that speaks it)."""
        if not requested:
            return self.default_voice
        if requested in self.voices:
            return requested
        wanted = requested.replace("-", "_").lower()
        for name in self.voices:
            language = name.split("-")[0].lower()
            if language == wanted or language.split("_")[0] == wanted:
                return name
        raise UnknownVoice(f"unknown voice {requested!r}; loaded voices: {', '.join(self.voices)}")

    def warm_up(self) -> None:
        for voice in self.voices.values():
            list(voice.synthesize("Ok."))

    async def speak(self, text: str, voice: str | None = None, speed: float = 1.0, rate: int = PIPELINE_RATE) -> Speech:
        """Speech for `text` at `rate` Hz (0: the voice's own rate), from the cache when it was said before."""
        name = self.resolve_voice(voice)
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ProviderError(422, f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
        if len(text) > self.max_chars:
            raise ProviderError(422, f"text is {len(text)} characters; the limit is {self.max_chars}")
        spoken = to_spoken(text)
        if not spoken:
            raise ProviderError(422, "the text has nothing a voice can say")
        rate = rate or self.voice_rate(name)
        key = (name, speed, rate, spoken)
        cached = self.cache.get(key)
        if cached is not None:
            return replace(cached, from_cache=True)
        speech = await self.worker.run(lambda: self._synthesize(name, spoken, speed, rate))
        self.cache.put(key, speech)
        return speech

    def _synthesize(self, name: str, text: str, speed: float, rate: int) -> Speech:
        voice = self.voices[name]
        config = SynthesisConfig(length_scale=voice.config.length_scale / speed, volume=self.volume,
                                 noise_scale=self.noise_scale, noise_w_scale=self.noise_w_scale)
        chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=config)]
        if not chunks:
            raise ProviderError(422, "the text has nothing a voice can say")
        audio = resample(np.concatenate(chunks), voice.config.sample_rate, rate)
        return Speech(to_int16(audio), rate)

    def close(self) -> None:
        self.worker.shutdown()
