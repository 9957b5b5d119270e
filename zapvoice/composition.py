"""The composition root: the one place engines are chosen, loaded and prepared for calls.

The commands call it; everything else (the service, the conversation, the transports) gets a
ready `Engines` and sees only the interfaces of providers.contracts, so faster-whisper, Piper,
CTranslate2 and onnxruntime are imported here, and only by a command that needs them.

For the agent each of STT, LLM and TTS is chosen on its own: `--stt-url`/`--tts-url` point at a
provider speaking the HTTP contract (a zapvoice service, or anything ZuckZapGo's ai mode could
use); without them the models load here, once, shared by every call. The LLM is always remote:
an OpenAI-compatible API (streamed) or a contract /llm URL (whole replies).
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from zapvoice.providers.contract_clients import ContractChat, ContractSTT, ContractTTS
from zapvoice.providers.contracts import Engines, SpeechToText
from zapvoice.providers.errors import ProviderError
from zapvoice.providers.llm import OpenAIChat
from zapvoice.providers.model_load import voice_load_problem, whisper_load_problem
from zapvoice.providers.model_store import ModelError, ModelStore
from zapvoice.providers.smart_turn import SmartTurn
from zapvoice.providers.stt import WhisperSTT
from zapvoice.providers.tts import PiperTTS
from zapvoice.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ServiceEngines(Engines):
    """The service's engines, all in process: the Whisper and Piper workers and the speech cache are what
    /ready reports, and /stt, /tts use their upload and sample-rate entry points."""

    stt: WhisperSTT
    tts: PiperTTS


def service_engines(settings: Settings, download: bool | None = None) -> ServiceEngines:
    """The service's engines, all in process: resolve, fetch if allowed, load and warm every model;
    ModelError says what to run when one is unusable (every missing model at once)."""
    started = time.perf_counter()
    whisper_dir, voice_files, _ = _resolve(settings, download, whisper=True, voices=True)
    assert whisper_dir is not None  # resolved with whisper=True
    stt = _whisper(settings, whisper_dir)
    tts = _voices(settings, voice_files)
    log.info("models ready in %.1f s: whisper %s, voices %s", time.perf_counter() - started,
             settings.stt.whisper_model, ", ".join(tts.voices))
    return ServiceEngines(stt=stt, llm=OpenAIChat(settings.llm), tts=tts)


def agent_engines(settings: Settings) -> Engines:
    """The agent's engines: each loaded here or connected over HTTP; ModelError when a local model is unusable."""
    token = settings.agent.provider_token.get_secret_value() if settings.agent.provider_token else None
    timeout = settings.agent.provider_timeout_s
    # Every model found (or fetched) before anything slow is loaded; one message lists all that are missing.
    whisper_dir, voice_files, turn_file = _resolve(settings, None, whisper=not settings.stt.url,
                                                   voices=not settings.tts.url,
                                                   turn=settings.turns.end_of_turn == "smart-turn")
    stt: SpeechToText
    if settings.stt.url:
        stt = ContractSTT(settings.stt.url, token, timeout)
    else:
        assert whisper_dir is not None  # resolved with whisper=True
        stt = _whisper(settings, whisper_dir)
    tts = ContractTTS(settings.tts.url, token, timeout) if settings.tts.url else _voices(settings, voice_files)
    llm = ContractChat(settings.llm.url, token, timeout) if settings.llm.is_contract else OpenAIChat(settings.llm)
    turn = _turn_model(settings, turn_file) if turn_file is not None else None
    _warn_short_queues(settings)
    log.info("agent engines: stt %s, llm %s, tts %s, end of turn %s",
             settings.stt.url or f"whisper {settings.stt.whisper_model}", settings.llm.url,
             settings.tts.url or ", ".join(settings.tts.voices),
             settings.turns.smart_turn_model if turn else "on silence")
    return Engines(stt, llm, tts, turn)


def _warn_short_queues(settings: Settings) -> None:
    """An in-process engine that refuses while calls are admitted makes some callers hear the error reply."""
    for name, section, remote in (("stt", settings.stt, settings.stt.url), ("tts", settings.tts, settings.tts.url)):
        if not remote and section.concurrency + section.queue < settings.agent.max_calls:
            log.warning("%s.concurrency + %s.queue (%d) is below agent.max_calls (%d): when that many calls need "
                        "it at once, some get the error reply instead of waiting; raise %s.queue",
                        name, name, section.concurrency + section.queue, settings.agent.max_calls, name)


def load_whisper(settings: Settings, download: bool | None = None) -> WhisperSTT:
    """The configured Whisper model, fetched if allowed, loaded and warmed."""
    whisper_dir, _, _ = _resolve(settings, download, whisper=True, voices=False)
    assert whisper_dir is not None  # resolved with whisper=True
    return _whisper(settings, whisper_dir)


def load_voices(settings: Settings, download: bool | None = None) -> PiperTTS:
    """The configured Piper voices, fetched if allowed, loaded and warmed."""
    return _voices(settings, _resolve(settings, download, whisper=False, voices=True)[1])


def _resolve(settings: Settings, download: bool | None, whisper: bool, voices: bool,
             turn: bool = False) -> tuple[Path | None, dict, Path | None]:
    store = ModelStore(settings.models.dir, hub_url=settings.models.hub_url)
    download = settings.models.auto_download if download is None else download
    return store.resolve(settings.stt.whisper_model if whisper else None, settings.tts.voices if voices else [],
                         download, turn=settings.turns.smart_turn_model if turn else None)


def _whisper(settings: Settings, whisper_dir: Path) -> WhisperSTT:
    try:
        stt = WhisperSTT(whisper_dir, settings.stt)
    except (RuntimeError, ValueError, OSError, KeyError) as exc:
        raise ModelError(whisper_load_problem(whisper_dir, settings, exc)) from exc
    stt.warm_up()
    return stt


def _voices(settings: Settings, voice_files: dict[str, Path]) -> PiperTTS:
    try:
        tts = PiperTTS(voice_files, settings.tts)
    except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) share no base below Exception
        raise ModelError(voice_load_problem(voice_files, settings, exc)) from exc
    tts.warm_up()
    return tts


def load_turn_model(settings: Settings, download: bool | None = None) -> SmartTurn:
    """The end-of-turn model (turns.smart_turn_model), fetched if allowed, loaded and warmed."""
    turn_file = _resolve(settings, download, whisper=False, voices=False, turn=True)[2]
    assert turn_file is not None  # resolved with turn=True
    return _turn_model(settings, turn_file)


def _turn_model(settings: Settings, model_file: Path) -> SmartTurn:
    """One model call at a time, on one thread, with a pending call allowed per call the agent takes."""
    try:
        model = SmartTurn(model_file, queue=settings.agent.max_calls)
    except ValueError as exc:  # SmartTurn reports onnxruntime's load errors as ValueError
        raise ModelError(f"cannot load the end-of-turn model {model_file}: {exc}. Replace the file, or fetch "
                         f"it again with `zapvoice models pull {settings.turns.smart_turn_model} --force`.") from exc
    model.warm_up()
    return model


async def cache_fixed_phrases(engines: Engines, settings: Settings) -> None:
    """Synthesize the greeting, idle prompt, farewell and error reply once, so every call gets them from the cache."""
    try:
        for text in (settings.agent.greeting, settings.agent.idle_prompt, settings.agent.farewell,
                     settings.agent.error_reply):
            if text:
                await engines.tts.speak(text)
    except ProviderError as exc:  # a remote TTS that is down now may be up when a call comes
        log.warning("cannot prepare the greeting: %s", exc.message)


def freeze_heap() -> None:
    """The last start-up step before calls: take everything loaded so far out of the garbage
    collector's full passes (gc.freeze). With the models in memory a full collection walks ~60k
    objects and stalls every call's audio for about 30 ms; frozen, it costs nothing (measured
    with benchmarks/bench_agent.py)."""
    gc.collect()
    gc.freeze()
