"""The three engines of one process, loaded once and shared by the service and the agent."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from zapvoice.providers.llm import OpenAIChat
from zapvoice.providers.model_store import ModelError, ModelStore
from zapvoice.providers.stt import WhisperSTT
from zapvoice.providers.tts import PiperTTS
from zapvoice.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Engines:
    stt: WhisperSTT
    llm: OpenAIChat
    tts: PiperTTS
    whisper_name: str

    @classmethod
    def load(cls, settings: Settings, download: bool | None = None) -> Engines:
        """Resolve, fetch if allowed, load and warm every model; ModelError says what to run when one is unusable."""
        started = time.perf_counter()
        stt = load_whisper(settings, download)
        tts = load_voices(settings, download)
        log.info("models ready in %.1f s: whisper %s, voices %s", time.perf_counter() - started,
                 settings.stt.whisper_model, ", ".join(tts.voices))
        return cls(stt=stt, llm=OpenAIChat(settings.llm), tts=tts, whisper_name=Path(settings.stt.whisper_model).name)

    async def aclose(self) -> None:
        self.stt.close()
        self.tts.close()
        await self.llm.aclose()


def load_whisper(settings: Settings, download: bool | None = None) -> WhisperSTT:
    """The configured Whisper model, fetched if allowed, loaded and warmed."""
    store = ModelStore(settings.models.dir, hub_url=settings.models.hub_url)
    whisper_dir = store.whisper_dir(settings.stt.whisper_model, settings.models.auto_download if download is None else download)
    stt = _load("Whisper model", whisper_dir, lambda: WhisperSTT(whisper_dir, settings.stt))
    stt.warm_up()
    return stt


def load_voices(settings: Settings, download: bool | None = None) -> PiperTTS:
    """The configured Piper voices, fetched if allowed, loaded and warmed."""
    store = ModelStore(settings.models.dir, hub_url=settings.models.hub_url)
    download = settings.models.auto_download if download is None else download
    voice_files = dict(store.voice_file(spec, download) for spec in settings.tts.voices)
    tts = _load("Piper voices", ", ".join(map(str, voice_files.values())), lambda: PiperTTS(voice_files, settings.tts))
    tts.warm_up()
    return tts


def _load(what: str, where: object, load):
    try:
        return load()
    except (RuntimeError, ValueError, OSError, KeyError) as exc:
        raise ModelError(f"cannot load the {what} from {where}: {exc}. "
                         "Fetch it again with `zapvoice models pull --force`.") from exc
