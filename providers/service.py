"""The HTTP service ZuckZapGo's ai mode calls: POST /stt, /llm and /tts (docs/contracts.md §1).

Every failure is a JSON `{"error": "..."}` with a 4xx/5xx status; nothing a client sends can
crash the process. The engines are loaded before the app is built (a missing model stops
start-up with a message), so the app only ever serves ready engines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pydantic_core
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from zapvoice.agent.admission import CallSlots
from zapvoice.agent.browser.server import Playground
from zapvoice.providers.bearer import presented_token, token_matches
from zapvoice.providers.client_gone import unless_client_leaves
from zapvoice.providers.contracts import Message as ChatMessage
from zapvoice.providers.errors import ProviderError, error_body, openai_status
from zapvoice.providers.llm_check import LlmProbe
from zapvoice.providers.metrics import METRICS, RequestMetrics
from zapvoice.providers.tts import MAX_SPEED, MIN_SPEED

from zapvoice.audio import PIPELINE_RATE, AudioError, MediaType, decode_audio, wav_bytes
from zapvoice.settings import LLMSettings, ServiceSettings, Settings

if TYPE_CHECKING:  # the composition root imports the model libraries; the service gets them built
    from zapvoice.composition import ServiceEngines

log = logging.getLogger(__name__)


class LlmMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str = Field(pattern="^(user|assistant)$")
    content: StrictStr


class LlmRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    system: StrictStr = ""
    messages: list[LlmMessage] = Field(min_length=1)


class TtsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: StrictStr = Field(min_length=1)
    voice: StrictStr | None = None
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED, strict=True)  # a number: not "1.0", not true


def create_app(settings: Settings, engines: ServiceEngines,
               alongside: Callable[[CallSlots], AbstractAsyncContextManager] | None = None) -> FastAPI:
    """`engines`: the in-process ones (zapvoice.composition.service_engines), whose workers and
    cache /ready reports. `alongside`: something to run beside the service on the same engines
    (the 4143 gateway), given the process's call count, started with it and stopped before the
    engines are closed."""
    llm_probe = LlmProbe(settings.llm)
    slots = CallSlots(settings.agent.max_calls)  # one agent.max_calls for the playground and the gateway
    playground = Playground(settings, engines, slots=slots)  # a browser conversation on this process's engines

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await llm_probe.check_and_warn()
        async with alongside(slots) if alongside else nullcontext():
            yield
        await playground.aclose()
        await llm_probe.aclose()
        await engines.aclose()

    docs = settings.service.api_docs == "on" or (settings.service.api_docs == "auto" and settings.service.is_loopback)
    app = FastAPI(title="zapvoice providers", version="0.1.0", lifespan=lifespan, openapi_url="/openapi.json" if docs
                  else None)
    app.state.engines = engines
    app.add_middleware(BodyLimit, max_bytes=settings.service.max_body_bytes)
    if settings.service.metrics != "off":
        app.add_middleware(RequestMetrics)  # outermost: it also sees the body limit's 413s
    _add_error_handlers(app)
    authorized = Depends(_bearer_check(settings.service))
    whisper_name = Path(settings.stt.whisper_model).name

    from zapvoice.providers.openai_api import openai_router  # it reuses this module's request helpers
    app.include_router(openai_router(settings, engines, authorized))

    if settings.service.metrics != "off":
        @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False,
                 dependencies=[authorized] if settings.service.metrics == "token" else [])
        async def metrics() -> Response:
            body, content_type = METRICS.exposition()
            return Response(body, media_type=content_type)

    app.router.routes.extend(playground.routes())

    @app.get("/health", summary="The process is alive")
    @app.head("/health", include_in_schema=False)
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", summary="Models are loaded and the service takes requests; `llm`: whether the LLM answers")
    @app.head("/ready", include_in_schema=False)
    async def ready() -> dict:
        # Ready means the engines are loaded: /stt and /tts work with the LLM down, and an orchestrator
        # restarting this process would not bring the LLM back. `llm` says whether /llm can answer.
        return {"ready": True, "llm": llm_probe.current(), "whisper": whisper_name, "voices": list(engines.tts.voices),
                "stt_jobs": engines.stt.worker.in_flight, "tts_jobs": engines.tts.worker.in_flight,
                "tts_cache": {"entries": len(engines.tts.cache), "bytes": engines.tts.cache.bytes}}

    @app.post("/stt", dependencies=[authorized],
              summary="Speech (WAV, FLAC, OGG, raw s16le, or multipart 'file') to text")
    async def stt(request: Request, language: str | None = None) -> JSONResponse:
        started = time.perf_counter()
        engines.stt.worker.refuse_if_full()
        body, content_type = await _audio_upload(request)
        decode = partial(decode_audio, body, content_type, settings.stt.max_audio_s,
                         max_channels=settings.stt.max_channels, max_samples=settings.stt.max_decoded_samples)
        try:
            transcript = await engines.stt.transcribe_upload(lambda: decode()[0], language)
        except AudioError as exc:
            raise ProviderError(exc.status, str(exc)) from exc
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        request.state.stt_audio_s, request.state.stt_processing_s = transcript.duration_s, elapsed_ms / 1000
        log.info("stt %.2f s of audio -> %d chars in %.0f ms (speech=%s)", transcript.duration_s, len(transcript.text),
                 elapsed_ms, transcript.speech)
        return JSONResponse({"text": transcript.text, "language": transcript.language,
                             "duration_s": round(transcript.duration_s, 3), "speech": transcript.speech,
                             "processing_ms": elapsed_ms})

    @app.post("/llm", dependencies=[authorized], summary="Conversation to the assistant's spoken reply",
              openapi_extra=_json_body(LlmRequest))
    async def llm(request: Request) -> JSONResponse:
        started = time.perf_counter()
        raw = await _body_within(request, _llm_body_limit(settings.llm), _llm_body_too_large(settings.llm))
        body = await asyncio.to_thread(_parse_llm_request, raw, settings.llm)
        # LlmMessage's pattern admits only these two roles.
        messages: list[ChatMessage] = [{"role": "user" if m.role == "user" else "assistant", "content": m.content}
                                       for m in body.messages]
        reply = await unless_client_leaves(request, engines.llm.reply(body.system, messages))
        log.info("llm %d messages -> %d chars in %.0f ms", len(messages), len(reply),
                 (time.perf_counter() - started) * 1000)
        return JSONResponse({"reply": reply})

    @app.post("/tts", dependencies=[authorized], summary="Text to speech: WAV, or raw s16le 16 kHz mono",
              openapi_extra=_json_body(TtsRequest),
              responses={200: {"content": {"audio/wav": {}, "audio/L16": {}}}})
    async def tts(request: Request) -> Response:
        started = time.perf_counter()
        raw = _wants_raw_pcm(request.headers.get("accept"))
        body = parse_json_body(TtsRequest, await request.body())
        rate = PIPELINE_RATE if raw else settings.tts.sample_rate
        speech = await engines.tts.speak(body.text, body.voice, body.speed, rate)
        cache = "hit" if speech.from_cache else "miss"
        request.state.tts_chars, request.state.tts_cache_hit = len(body.text), speech.from_cache
        headers = {"X-Cache": cache, "X-Audio-Duration": f"{speech.duration_s:.3f}"}
        log.info("tts %d chars -> %.2f s of audio in %.1f ms (cache %s)", len(body.text), speech.duration_s,
                 (time.perf_counter() - started) * 1000, cache)
        if raw:
            return Response(speech.pcm.tobytes(), media_type=f"audio/L16;rate={speech.rate};channels=1",
                            headers=headers)
        return Response(wav_bytes(speech.pcm, speech.rate), media_type="audio/wav", headers=headers)

    return app


# --- request handling helpers --------------------------------------------------------------


def _bearer_check(settings: ServiceSettings):
    expected = settings.token.get_secret_value() if settings.token else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        presented = presented_token(request.headers.get("authorization"))
        if presented is None:
            raise ProviderError(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        if not token_matches(expected, presented):
            raise ProviderError(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})

    return check


async def _audio_upload(request: Request) -> tuple[bytes, str | None]:
    """The audio bytes and their content type, from a raw body or a multipart 'file' field."""
    content_type = request.headers.get("content-type")
    if MediaType.parse(content_type).mime != "multipart/form-data":
        return await request.body(), content_type
    form = await request.form(max_files=1, max_fields=10)  # malformed: Starlette's 400, answered as JSON below
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ProviderError(422, "multipart body has no 'file' field: use curl -F file=@audio.wav")
    return await upload.read(), upload.content_type


def parse_json_body(model: type[BaseModel], body: bytes):
    """JSON whatever the content type says (curl -d sends form type), validated into `model`."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise ProviderError(422, _describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "json_invalid":
            problems.append("the body is not valid JSON")
        else:
            problems.append(f"{where or 'body'}: {error['msg']}")
    return "; ".join(problems)


async def _body_within(request: Request, max_bytes: int, refusal: str) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `max_bytes` (Content-Length, or while it streams)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ProviderError(413, refusal)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ProviderError(413, refusal)
        chunks.append(chunk)
    return b"".join(chunks)


def _llm_body_limit(settings: LLMSettings) -> int:
    """The largest JSON a conversation within llm.max_chars and llm.max_messages can be: 12 bytes a character
    (an emoji escaped as a surrogate pair), 256 bytes of keys, indentation and ignored fields a message."""
    return 12 * settings.max_chars + 256 * settings.max_messages + 4096


def _llm_body_too_large(settings: LLMSettings) -> str:
    return (f"the /llm body is larger than {_llm_body_limit(settings):,} bytes, the most llm.max_chars "
            f"({settings.max_chars}) and llm.max_messages ({settings.max_messages}) can take")


def _parse_llm_request(raw: bytes, settings: LLMSettings) -> LlmRequest:
    """Parsed, then messages counted, then validated: a list of 200,000 non-messages costs one error, not 400,000."""
    try:
        parsed = pydantic_core.from_json(raw)
    except ValueError as exc:
        raise ProviderError(422, "the body is not valid JSON") from exc
    messages = parsed.get("messages") if isinstance(parsed, dict) else None
    if isinstance(messages, list) and len(messages) > settings.max_messages:
        raise ProviderError(422, f"{len(messages)} messages; the limit is {settings.max_messages}")
    try:
        body = LlmRequest.model_validate(parsed)
    except ValidationError as exc:
        raise ProviderError(422, _describe(exc)) from exc
    chars = len(body.system) + sum(len(m.content) for m in body.messages)
    if chars > settings.max_chars:
        raise ProviderError(422, f"the conversation is {chars} characters; the limit is {settings.max_chars}")
    return body


_WAV_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/*", "*/*"}
_RAW_TYPES = {"audio/l16", "audio/pcm", "audio/raw", "application/octet-stream"}


def _wants_raw_pcm(accept: str | None) -> bool:
    """The first acceptable type in Accept decides; no Accept means WAV (ZuckZapGo sends audio/wav)."""
    if not accept:
        return False
    for item in accept.split(","):
        mime = MediaType.parse(item).mime
        if mime in _WAV_TYPES:
            return False
        if mime in _RAW_TYPES:
            return True
    raise ProviderError(406, f"cannot answer with {accept!r}: accept audio/wav or audio/L16 (raw s16le 16 kHz mono)")


def _json_body(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProviderError)
    async def provider_error(request: Request, exc: ProviderError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s", exc.message)
        return _error(request.url.path, exc.status, exc.message, exc.kind, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Starlette's own refusals (unknown route, wrong method, malformed multipart) in our error shape."""
        message = {404: f"no route {request.url.path}: use POST /stt, /llm or /tts, or the OpenAI API under /v1",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, exc.detail)
        return _error(request.url.path, exc.status_code, message, headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> JSONResponse:
        """The client left (or was cut off at body_timeout_s) before its body arrived: nobody reads the answer."""
        log.info("%s: the client went away before its request body arrived", request.url.path)
        return _error(request.url.path, 400, "the client disconnected")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _error(request.url.path, 500, f"internal error: {type(exc).__name__}")


def _error(path: str, status: int, message: str, kind: str | None = None,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(path, status, message, kind), status_code=openai_status(path, status),
                        headers=headers)


class BodyTooLarge(ProviderError):
    def __init__(self, max_bytes: int):
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodyLimit:
    """Refuses bodies over `max_bytes`: by Content-Length at once, or while a chunked body streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = _error(scope["path"], 413, BodyTooLarge(self.max_bytes).message)
            return await response(scope, receive, send)
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counting_receive, send)

