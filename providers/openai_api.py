"""OpenAI's audio API over the same engines: what n8n, Open WebUI, Typebot and Chatwoot speak.

POST /v1/audio/transcriptions and /v1/audio/translations (multipart, as OpenAI's), POST
/v1/audio/speech, GET /v1/models (and /v1/audio/models, /v1/audio/voices, which Open WebUI reads).
Same bearer token, body limit and workers as /stt and /tts; errors in OpenAI's shape
(providers.errors.error_body). Transcriptions take recordings of minutes (stt.max_note_s), decoded
with timestamps in 30 s windows (WhisperSTT.transcribe_note); /stt keeps its utterance fast path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.params import Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.datastructures import UploadFile
from zapvoice.providers.errors import ProviderError
from zapvoice.providers.service import parse_json_body
from zapvoice.providers.stt import Note, NoteSegment
from zapvoice.providers.tts import MAX_SPEED, MIN_SPEED

from zapvoice.audio import ENCODINGS, AudioError, decode_audio, encode_audio
from zapvoice.settings import Settings

if TYPE_CHECKING:
    from zapvoice.composition import ServiceEngines

# The names OpenAI clients send by default (n8n, Open WebUI: whisper-1 and tts-1), served by what is loaded.
TRANSCRIPTION_ALIASES = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
SPEECH_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "piper")
# OpenAI's voice names: a client that knows only those gets the default voice.
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
                           "verse"})
TRANSCRIPT_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
SPEECH_FORMATS = ("wav", "pcm", "flac", "opus", "mp3")
OPENAI_PCM_RATE = 24000  # OpenAI's pcm: 24 kHz s16le mono; opus and mp3 are made at this rate too


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # instructions, stream_format: not for Piper
    model: StrictStr
    input: StrictStr = Field(min_length=1)
    voice: StrictStr | None = None
    response_format: StrictStr = "mp3"  # OpenAI's default
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED)


def openai_router(settings: Settings, engines: ServiceEngines, authorized: Depends) -> APIRouter:
    router = APIRouter(prefix="/v1", dependencies=[authorized], tags=["OpenAI audio API"])
    whisper_name = Path(settings.stt.whisper_model).name
    transcription_models = (whisper_name, *TRANSCRIPTION_ALIASES)
    speech_models = (*SPEECH_ALIASES, *engines.tts.voices)

    @router.get("/models", summary="The models loaded, under their own names and OpenAI's")
    async def models() -> dict:
        return {"object": "list", "data": [_model(name) for name in (*transcription_models, *speech_models)]}

    @router.get("/models/{name:path}", summary="One model")
    async def model(name: str) -> dict:
        if name not in (*transcription_models, *speech_models):
            raise _unknown_model(name, (*transcription_models, *speech_models))
        return _model(name)

    @router.get("/audio/models", summary="Speech models, as Open WebUI lists them")
    async def audio_models() -> dict:
        return {"models": [{"id": name, "name": name} for name in speech_models]}

    @router.get("/audio/voices", summary="The Piper voices loaded")
    async def voices() -> dict:
        return {"voices": [{"id": name, "name": name, "language": name.split("-")[0]} for name in engines.tts.voices]}

    async def transcribe(request: Request, task: str) -> Response:
        engines.stt.worker.refuse_if_full()
        form = await request.form(max_files=1, max_fields=20)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ProviderError(400, "the multipart body has no 'file': send the audio as field 'file'")
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        name = fields.get("model", "")
        if name not in transcription_models:
            raise _unknown_model(name, transcription_models)
        response_format = fields.get("response_format") or "json"
        if response_format not in TRANSCRIPT_FORMATS:
            raise ProviderError(400, f"response_format {response_format!r}: use one of {', '.join(TRANSCRIPT_FORMATS)}")
        granularities = set(form.getlist("timestamp_granularities[]") or form.getlist("timestamp_granularities"))
        if not granularities <= {"segment", "word"}:
            raise ProviderError(400, "timestamp_granularities[] takes segment and word")
        if granularities and response_format != "verbose_json":
            raise ProviderError(400, "timestamp_granularities[] needs response_format verbose_json")
        temperature = _temperature(fields.get("temperature"))
        body = await upload.read()
        # OpenAI takes files, never headerless PCM: an unlabelled upload is a file for soundfile or PyAV to recognise.
        content_type = upload.content_type
        if not content_type or content_type == "application/octet-stream":
            content_type = "audio/*"
        decode = partial(decode_audio, body, content_type, settings.stt.max_note_s,
                         max_channels=settings.stt.max_channels, max_samples=settings.stt.max_note_samples)
        started = time.perf_counter()
        try:
            note = await engines.stt.transcribe_note(
                lambda: decode()[0], None if task == "translate" else fields.get("language"), task=task,
                words="word" in granularities, prompt=fields.get("prompt"), temperature=temperature)
        except AudioError as exc:
            raise ProviderError(exc.status, str(exc)) from exc
        request.state.stt_audio_s = note.duration_s
        request.state.stt_processing_s = time.perf_counter() - started
        return _transcript_response(note, response_format, task, "word" in granularities)

    @router.post("/audio/transcriptions", summary="Audio file (Ogg Opus, MP3, M4A, WAV, FLAC) to text")
    async def transcriptions(request: Request) -> Response:
        return await transcribe(request, "transcribe")

    @router.post("/audio/translations", summary="Audio file in any language to English text")
    async def translations(request: Request) -> Response:
        return await transcribe(request, "translate")

    @router.post("/audio/speech", summary="Text to speech: wav, pcm (24 kHz s16le), flac, opus (Ogg), mp3")
    async def speech(request: Request) -> Response:
        body = parse_json_body(SpeechRequest, await request.body())
        if body.model not in speech_models:
            raise _unknown_model(body.model, speech_models)
        if body.response_format not in SPEECH_FORMATS:
            raise ProviderError(400, f"response_format {body.response_format!r}: use one of "
                                f"{', '.join(SPEECH_FORMATS)}")
        voice = body.voice
        if not voice or voice.lower() in OPENAI_VOICES:  # a voice name as model (speaches' style) chooses it
            voice = body.model if body.model in engines.tts.voices else None
        wav_like = body.response_format in ("wav", "flac")
        rate = settings.tts.sample_rate if wav_like else OPENAI_PCM_RATE  # wav at /tts's rate: the same cache entries
        spoken = await engines.tts.speak(body.input, voice, body.speed, rate)
        request.state.tts_chars = len(body.input)
        request.state.tts_cache_hit = spoken.from_cache
        headers = {"X-Cache": "hit" if spoken.from_cache else "miss", "X-Audio-Duration": f"{spoken.duration_s:.3f}"}
        if body.response_format == "pcm":
            return Response(spoken.pcm.tobytes(), media_type=f"audio/L16;rate={spoken.rate};channels=1",
                            headers=headers)
        audio = await asyncio.to_thread(encode_audio, spoken.pcm, spoken.rate, body.response_format)
        return Response(audio, media_type=ENCODINGS[body.response_format][2], headers=headers)

    return router


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "zapvoice"}


class UnknownModel(ProviderError):
    kind = "model_not_found"  # OpenAI's code for it


def _unknown_model(name: str, known: Iterable[str]) -> ProviderError:
    return UnknownModel(404, f"unknown model {name!r}; this server has {', '.join(known)}")


def _temperature(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ProviderError(400, f"temperature must be a number from 0 to 1, got {raw!r}")
    return value


def _transcript_response(note: Note, response_format: str, task: str, words: bool) -> Response:
    if response_format == "json":
        return JSONResponse({"text": note.text})
    if response_format == "text":
        return PlainTextResponse(note.text)
    if response_format == "srt":
        return PlainTextResponse(_srt(note.segments), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(_vtt(note.segments), media_type="text/vtt")
    body: dict[str, Any] = {
        "task": task, "language": note.language if task == "transcribe" else "en",
        "duration": round(note.duration_s, 3), "text": note.text,
        "segments": [{"id": i, "seek": round(s.start * 100), "start": round(s.start, 3), "end": round(s.end, 3),
                      "text": s.text, "tokens": list(s.tokens), "temperature": s.temperature,
                      "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
                      "no_speech_prob": s.no_speech_prob} for i, s in enumerate(note.segments)],
    }
    if words:
        body["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
                         for s in note.segments for w in s.words]
    return JSONResponse(body)


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}{separator}{millis % 1000:03d}"


def _srt(segments: Iterable[NoteSegment]) -> str:
    return "".join(f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n\n"
                   for i, s in enumerate(segments, 1))


def _vtt(segments: Iterable[NoteSegment]) -> str:
    return "WEBVTT\n\n" + "".join(f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n\n" for s in segments)
