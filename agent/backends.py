"""The agent's speech and language engines: loaded in this process, or reached over HTTP.

Each of STT, LLM and TTS is chosen on its own: `--stt-url`/`--tts-url` point at a provider
speaking the HTTP contract (a zapvoice service, or anything ZuckZapGo's ai mode could use);
without them the models load here, once, shared by every call. The LLM is always remote:
an OpenAI-compatible API (streamed) or a contract /llm URL (whole replies).
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

from zapvoice.providers.contract_clients import ContractChat, ContractSTT, ContractTTS
from zapvoice.providers.contracts import ChatModel, SpeechToText, TextToSpeech
from zapvoice.providers.engines import load_voices, load_whisper
from zapvoice.providers.errors import ProviderError
from zapvoice.providers.llm import OpenAIChat
from zapvoice.settings import AgentSettings, Settings

log = logging.getLogger(__name__)


@dataclass
class Backends:
    stt: SpeechToText
    llm: ChatModel
    tts: TextToSpeech

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        """Load or connect each engine; raises ModelError when a local model is unusable."""
        token = settings.agent.provider_token.get_secret_value() if settings.agent.provider_token else None
        timeout = settings.agent.provider_timeout_s
        stt = ContractSTT(settings.stt.url, token, timeout) if settings.stt.url else load_whisper(settings)
        tts = ContractTTS(settings.tts.url, token, timeout) if settings.tts.url else load_voices(settings)
        llm = ContractChat(settings.llm.url, token, timeout) if settings.llm.is_contract else OpenAIChat(settings.llm)
        log.info("agent engines: stt %s, llm %s, tts %s", settings.stt.url or f"whisper {settings.stt.whisper_model}",
                 settings.llm.url, settings.tts.url or ", ".join(settings.tts.voices))
        return cls(stt, llm, tts)

    async def prepare_for_calls(self, settings: AgentSettings) -> None:
        """Synthesize the fixed phrases once so every call gets them from the cache, then take
        everything loaded so far out of the garbage collector's full passes (gc.freeze): with the
        models in memory a full collection walks ~60k objects and stalls every call's audio for
        about 30 ms; frozen, it costs nothing (measured with benchmarks/bench_agent.py)."""
        try:
            for text in (settings.greeting, settings.idle_prompt, settings.farewell,
                         settings.error_reply):
                if text:
                    await self.tts.speak(text)
        except ProviderError as exc:  # a remote TTS that is down now may be up when a call comes
            log.warning("cannot prepare the greeting: %s", exc.message)
        gc.collect()
        gc.freeze()

    async def aclose(self) -> None:
        for engine in (self.stt, self.llm, self.tts):  # clients close a connection pool, models a worker pool
            if hasattr(engine, "aclose"):
                await engine.aclose()
            else:
                engine.close()
