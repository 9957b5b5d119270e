"""Clients of the provider HTTP contract (docs/contracts.md §1): the same interfaces as the engines in process.

With them the agent can run against any zapvoice service, or any provider that speaks the contract
ZuckZapGo's ai mode uses: STT takes a WAV and answers {"text"}, LLM takes {"system", "messages"} and
answers {"reply"}, TTS takes {"text"} and answers a WAV (any rate) or raw s16le 16 kHz mono PCM.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import httpx
import numpy as np
from zapvoice.providers.contracts import Message, Speech, ToolCall, Transcript
from zapvoice.providers.errors import ProviderError, UnknownVoice, upstream_error_kind, upstream_error_text

from zapvoice.audio import PIPELINE_RATE, decode_audio, to_int16, wav_bytes

_MAX_SPEECH_S = 600.0  # a TTS answer longer than ten minutes is a broken provider


class ContractClient:
    """One provider URL, with its bearer token, a pooled connection and failures as ProviderError:
    UnknownVoice when a zapvoice provider says so (its error's `kind`), a 502 or 504 otherwise."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 30.0,
                 client: httpx.AsyncClient | None = None):
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_s = timeout_s
        self.client = client or httpx.AsyncClient(timeout=timeout_s)

    async def _post(self, **request) -> httpx.Response:
        headers = {**self.headers, **request.pop("headers", {})}
        try:
            response = await self.client.post(self.url, headers=headers, **request)
        except httpx.TimeoutException as exc:
            raise ProviderError(504, f"{self.url} did not answer within {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(502, f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            message = f"{self.url} answered HTTP {response.status_code}: {upstream_error_text(response)}"
            if upstream_error_kind(response) == UnknownVoice.kind:
                raise UnknownVoice(message)
            raise ProviderError(502, message)
        return response

    def _field(self, response: httpx.Response, name: str) -> str:
        try:
            value = response.json()[name]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(502, f"{self.url} answered without a {name!r} field: {response.text[:200]!r}") from exc
        if not isinstance(value, str):
            raise ProviderError(502, f"{self.url} answered a {name!r} that is not text")
        return value

    async def aclose(self) -> None:
        await self.client.aclose()


class ContractSTT(ContractClient):
    async def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        response = await self._post(content=wav_bytes(samples, PIPELINE_RATE),
                                    params={"language": language} if language else None,
                                    headers={"Content-Type": "audio/wav"})
        text = self._field(response, "text")
        body = response.json()
        detected = body.get("language") if isinstance(body.get("language"), str) else language
        # zapvoice says whether there was speech; for other providers, guess from the text.
        speech = body.get("speech") if isinstance(body.get("speech"), bool) else bool(text)
        return Transcript(text, detected, samples.size / PIPELINE_RATE, speech=speech)


class ContractChat(ContractClient):
    async def reply(self, system: str, messages: list[Message]) -> str:
        response = await self._post(json={"system": system, "messages": list(messages)})
        return self._field(response, "reply")

    async def stream(self, system: str, messages: list[Message],
                     tools: Sequence[dict] = ()) -> AsyncGenerator[str | ToolCall, None]:
        """The contract has no streaming and no tools: the whole reply, at once."""
        yield await self.reply(system, messages)


class ContractTTS(ContractClient):
    async def speak(self, text: str, voice: str | None = None, speed: float = 1.0) -> Speech:
        body: dict = {"text": text}
        if voice:  # only zapvoice knows these fields; plain contract providers get plain requests
            body["voice"] = voice
        if speed != 1.0:
            body["speed"] = speed
        response = await self._post(json=body, headers={"Accept": "audio/wav"})
        audio = response.content
        if audio[:4] == b"RIFF":
            try:
                samples, _ = decode_audio(audio, "audio/wav", _MAX_SPEECH_S)
            except ValueError as exc:
                raise ProviderError(502, f"{self.url} answered an unreadable WAV: {exc}") from exc
            pcm = to_int16(samples)
        else:  # the contract: anything else is raw s16le 16 kHz mono
            pcm = np.frombuffer(audio[: len(audio) - len(audio) % 2], "<i2")
        if pcm.size == 0:
            raise ProviderError(502, f"{self.url} answered no audio")
        return Speech(pcm, PIPELINE_RATE)

