"""The HTTP-contract clients against the real service, a raw-PCM provider and broken providers."""

import asyncio

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from zapvoice.providers.contract_clients import ContractChat, ContractSTT, ContractTTS
from zapvoice.providers.errors import ProviderError, UnknownVoice

from tests.conftest import SCRIPTED_TEXT, TOKEN
from tests.support.servers import serve_in_thread
from tests.support.speech import speak


def call(client, method: str, *args, **kwargs):
    """One client call on a fresh event loop, then close the client (its pool belongs to that loop)."""
    async def main():
        try:
            return await getattr(client, method)(*args, **kwargs)
        finally:
            await client.aclose()
    return asyncio.run(main())


CHAT = ("", [{"role": "user", "content": "x"}])


def test_stt_chat_and_tts_through_the_service(service):
    transcript = call(ContractSTT(f"{service.url}/stt", TOKEN), "transcribe", speak("Olá, tudo bem?"), "pt")
    assert (transcript.text, transcript.language, transcript.speech) == (SCRIPTED_TEXT, "pt", True)
    silence = call(ContractSTT(f"{service.url}/stt", TOKEN), "transcribe", np.zeros(16000, np.float32))
    assert (silence.text, silence.speech) == ("", False)
    reply = call(ContractChat(f"{service.url}/llm", TOKEN), "reply", "Seja breve.", [{"role": "user", "content": "oi"}])
    assert reply == "Você disse: oi"
    speech = call(ContractTTS(f"{service.url}/tts", TOKEN), "speak", "Olá!", voice="en", speed=1.5)
    assert speech.rate == 16000 and speech.pcm.dtype == np.int16 and speech.duration_s > 0.2


def test_an_unknown_voice_is_told_apart_from_other_failures(service):
    """The agent falls back to the default voice on UnknownVoice, and only on it."""
    with pytest.raises(UnknownVoice, match="unknown voice 'fr'"):
        call(ContractTTS(f"{service.url}/tts", TOKEN), "speak", "Olá!", voice="fr")
    with pytest.raises(ProviderError, match="the limit is") as caught:
        call(ContractTTS(f"{service.url}/tts", TOKEN), "speak", "a" * 5000, voice="en")
    assert not isinstance(caught.value, UnknownVoice)


@pytest.fixture(scope="module")
def odd_providers():
    """A provider that answers raw PCM, and ones that break the contract in each way."""
    async def raw_pcm(_):
        return Response(np.full(1600, 1000, "<i2").tobytes(), media_type="application/octet-stream")

    async def wav_22k(_):
        from zapvoice.audio import wav_bytes
        return Response(wav_bytes(np.full(22050, 0.1, np.float32), 22050), media_type="audio/wav")

    async def error(_):
        return JSONResponse({"error": "voice exploded"}, status_code=500)

    async def no_field(_):
        return JSONResponse({"answer": "hi"})

    async def empty(_):
        return Response(b"", media_type="audio/wav")

    app = Starlette(routes=[Route(f"/{name}", handler, methods=["POST"]) for name, handler in
                            {"raw": raw_pcm, "wav22k": wav_22k, "error": error, "nofield": no_field, "empty": empty}.items()])
    running = serve_in_thread(app)
    yield running
    running.stop()


def test_tts_raw_pcm_and_any_wav_rate(odd_providers):
    raw = call(ContractTTS(f"{odd_providers.url}/raw"), "speak", "x")
    assert raw.pcm.size == 1600 and raw.rate == 16000
    resampled = call(ContractTTS(f"{odd_providers.url}/wav22k"), "speak", "x")
    assert resampled.pcm.size == pytest.approx(16000, abs=2)


@pytest.mark.parametrize(("client", "path", "says"), [
    (ContractTTS, "error", "HTTP 500: voice exploded"),
    (ContractTTS, "empty", "no audio"),
    (ContractChat, "nofield", "without a 'reply' field"),
    (ContractChat, "missing", "HTTP 404"),
])
def test_broken_providers_raise_provider_errors(odd_providers, client, path, says):
    method, args = ("speak", ("x",)) if client is ContractTTS else ("reply", CHAT)
    with pytest.raises(ProviderError) as caught:
        call(client(f"{odd_providers.url}/{path}"), method, *args)
    assert caught.value.status == 502 and says in caught.value.message


def test_wrong_token_and_unreachable(service):
    with pytest.raises(ProviderError, match="HTTP 401: invalid bearer token"):
        call(ContractChat(f"{service.url}/llm", "nope"), "reply", *CHAT)
    with pytest.raises(ProviderError, match="cannot reach"):
        call(ContractChat("http://127.0.0.1:9/llm"), "reply", *CHAT)
