"""The OpenAI-compatible routes (/v1/*) driven by the official `openai` package, over a real socket."""

import io

import av
import httpx
import numpy as np
import openai
import pytest
import soundfile

from tests.conftest import SCRIPTED_TEXT, TOKEN
from tests.model_builders.whisper import SCRIPTED_SEGMENT_END
from tests.support.speech import noise, speak
from zapvoice.audio import PIPELINE_RATE, decode_audio, encode_audio, to_int16


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speak("Olá, eu gostaria de marcar uma consulta para amanhã.")


@pytest.fixture()
def api(service):
    with openai.OpenAI(base_url=f"{service.url}/v1", api_key=TOKEN, max_retries=0, timeout=60) as client:
        yield client


def voice_note(samples: np.ndarray) -> bytes:
    """Ogg Opus at 16 kHz, as WhatsApp records voice notes."""
    return encode_audio(to_int16(samples), PIPELINE_RATE, "opus")


def m4a(samples: np.ndarray) -> bytes:
    """AAC in an MP4 container (.m4a), as iPhones share recordings, encoded with PyAV."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=PIPELINE_RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(to_int16(samples).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = PIPELINE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def test_whatsapp_voice_note_json(api, speech):
    note = voice_note(speech)
    assert note.startswith(b"OggS")
    result = api.audio.transcriptions.create(file=("note.ogg", note, "audio/ogg"), model="whisper-1")
    assert result.text == SCRIPTED_TEXT


@pytest.mark.parametrize("encoding", ["mp3", "m4a", "flac", "wav"])
def test_other_file_formats(api, speech, encoding):
    audio = m4a(speech) if encoding == "m4a" else encode_audio(to_int16(speech), PIPELINE_RATE, encoding)
    # application/octet-stream, as a client that cannot tell sends a file: recognised by its content.
    result = api.audio.transcriptions.create(file=(f"clip.{encoding}", audio, "application/octet-stream"),
                                             model="whisper-1", response_format="text")
    assert result.strip() == SCRIPTED_TEXT


def test_long_note_verbose_json_has_a_segment_per_window_and_words(api, speech):
    """70 s: longer than /stt takes; the scripted Whisper says its text once per 30 s window."""
    long_note = np.concatenate([speech, noise(70 - speech.size / PIPELINE_RATE, dbfs=-30)])
    file = ("long.ogg", voice_note(long_note), "audio/ogg")
    result = api.audio.transcriptions.create(file=file, model="whisper-1", language="pt",
                                             response_format="verbose_json", timestamp_granularities=["segment"])
    assert result.duration == pytest.approx(70, abs=0.1)
    assert result.language == "pt"
    assert [round(s.start) for s in result.segments] == [0, 30, 60]
    assert all(s.text == SCRIPTED_TEXT for s in result.segments)
    assert result.segments[0].end == pytest.approx(SCRIPTED_SEGMENT_END, abs=0.05)
    assert result.text == " ".join([SCRIPTED_TEXT] * 3)
    assert result.words is None  # only when asked

    with_words = api.audio.transcriptions.create(file=file, model="whisper-1", language="pt",
                                                 response_format="verbose_json", timestamp_granularities=["word"])
    assert [w.word for w in with_words.words] == [SCRIPTED_TEXT] * 3
    # Each word inside its own 30 s window (the scripted attention puts it near the window's end), in order.
    assert [int(w.start // 30) for w in with_words.words] == [0, 1, 2]
    assert all(w.start < w.end <= 70.05 for w in with_words.words)


def test_srt_and_vtt(api, speech):
    file = ("note.ogg", voice_note(speech), "audio/ogg")
    srt = api.audio.transcriptions.create(file=file, model="whisper-1", response_format="srt")
    assert srt == f"1\n00:00:00,000 --> 00:00:01,000\n{SCRIPTED_TEXT}\n\n"
    vtt = api.audio.transcriptions.create(file=file, model="whisper-1", response_format="vtt")
    assert vtt == f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{SCRIPTED_TEXT}\n\n"


def test_silence_is_an_empty_transcript(api):
    result = api.audio.transcriptions.create(file=("quiet.ogg", voice_note(np.zeros(PIPELINE_RATE * 3, np.float32)),
                                                   "audio/ogg"), model="whisper-1", response_format="verbose_json")
    assert result.text == "" and result.segments == []


def test_translation(api, speech):
    result = api.audio.translations.create(file=("note.ogg", voice_note(speech), "audio/ogg"), model="whisper-1",
                                           response_format="verbose_json")
    assert result.text == SCRIPTED_TEXT  # the scripted model answers its text for either task
    assert result.language == "en"
    plain = api.audio.translations.create(file=("note.ogg", voice_note(speech), "audio/ogg"), model="whisper-1")
    assert plain.text == SCRIPTED_TEXT


@pytest.mark.parametrize(("response_format", "rate"), [("wav", 16000), ("flac", 16000), ("opus", 24000),
                                                      ("mp3", 24000), ("pcm", 24000)])
def test_speech_formats(api, response_format, rate):
    answer = api.audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input="Bom dia, tudo bem?",
                                                       response_format=response_format)
    audio = answer.content
    if response_format == "pcm":
        samples = np.frombuffer(audio, "<i2")
        assert samples.size / rate > 0.3
        return
    assert audio.startswith({"wav": b"RIFF", "flac": b"fLaC", "opus": b"OggS", "mp3": b"ID3"}[response_format]) \
        or response_format == "mp3" and audio[0] == 0xFF
    info = soundfile.info(io.BytesIO(audio))
    assert info.samplerate == rate and info.channels == 1
    if response_format == "opus":
        assert info.subtype == "OPUS"
    assert info.duration == pytest.approx(float(answer.headers["X-Audio-Duration"]), abs=0.1)


def test_speech_shares_the_tts_cache(api, client):
    text = "Esta frase vem do cache na segunda vez."
    assert client.post("/tts", json={"text": text}).headers["X-Cache"] == "miss"
    again = api.audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input=text, response_format="wav")
    assert again.headers["X-Cache"] == "hit"


def test_speech_voice_by_name_language_or_model(api, service):
    for voice, model in [("en_US-test-medium", "tts-1"), ("en", "tts-1"), ("alloy", "en_US-test-medium")]:
        answer = api.audio.speech.with_raw_response.create(model=model, voice=voice, input="Hello there.",
                                                           response_format="wav", speed=1.5)
        assert answer.http_response.status_code == 200


def test_models_list_what_is_loaded(api, service, client):
    ids = {m.id for m in api.models.list()}
    assert {"whisper-1", "tts-1", "whisper", "pt_BR-test-medium", "en_US-test-medium"} <= ids
    assert api.models.retrieve("whisper-1").id == "whisper-1"
    voices = client.get("/v1/audio/voices").json()["voices"]
    assert [v["id"] for v in voices] == ["pt_BR-test-medium", "en_US-test-medium"]


def test_wrong_token_is_an_authentication_error(service, speech):
    with openai.OpenAI(base_url=f"{service.url}/v1", api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError) as raised:
            wrong.models.list()
    assert raised.value.body["message"] == "invalid bearer token"
    assert raised.value.code == "invalid_api_key"


def test_unknown_model_is_not_found(api, speech):
    with pytest.raises(openai.NotFoundError) as raised:
        api.audio.transcriptions.create(file=("note.ogg", voice_note(speech), "audio/ogg"), model="gpt-9")
    assert raised.value.code == "model_not_found"
    assert "whisper-1" in raised.value.message
    with pytest.raises(openai.NotFoundError):
        api.audio.speech.create(model="nope", voice="alloy", input="Oi")


@pytest.mark.parametrize(("call", "says"), [
    (lambda api, f: api.audio.transcriptions.create(file=f, model="whisper-1", response_format="xml"), "response_format"),
    (lambda api, f: api.audio.transcriptions.create(file=f, model="whisper-1", temperature=3), "temperature"),
    (lambda api, f: api.audio.transcriptions.create(file=f, model="whisper-1", language="xx"), "unknown language"),
    (lambda api, f: api.audio.transcriptions.create(file=f, model="whisper-1", timestamp_granularities=["word"]),
     "verbose_json"),
    (lambda api, f: api.audio.transcriptions.create(file=("x.ogg", b"OggS not really", "audio/ogg"), model="whisper-1"),
     "cannot read the audio"),
    (lambda api, f: api.audio.speech.create(model="tts-1", voice="klingon", input="Oi"), "unknown voice"),
    (lambda api, f: api.audio.speech.create(model="tts-1", voice="alloy", input="Oi", speed=4.0), "speed"),
    (lambda api, f: api.audio.speech.create(model="tts-1", voice="alloy", input="Oi", response_format="aac"),
     "response_format"),
])
def test_invalid_requests_are_bad_requests(api, speech, call, says):
    with pytest.raises(openai.BadRequestError) as raised:
        call(api, ("note.ogg", voice_note(speech), "audio/ogg"))
    assert says in raised.value.message
    assert raised.value.type == "invalid_request_error"


def test_too_long_is_413_in_openai_shape(make_service, speech):
    short = make_service(stt_max_note_s=5)
    with openai.OpenAI(base_url=f"{short.url}/v1", api_key=TOKEN, max_retries=0) as api:
        with pytest.raises(openai.APIStatusError) as raised:
            api.audio.transcriptions.create(file=("long.ogg", voice_note(np.tile(speech, 3)), "audio/ogg"),
                                            model="whisper-1")
    assert raised.value.status_code == 413
    assert "limit is 5 s" in raised.value.message


def test_errors_outside_the_engines_have_openai_shape(client, service):
    answer = client.get("/v1/nothing-here")
    assert answer.status_code == 404
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    too_big = httpx.post(f"{service.url}/v1/audio/transcriptions", content=b"x" * (17 * 1024 * 1024),
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert too_big.status_code == 413 and "larger than" in too_big.json()["error"]["message"]
    assert client.get("/nothing").json()["error"].startswith("no route")  # the contract routes keep their shape


def test_the_decoded_note_matches_the_upload(speech):
    """The decode the routes use reads the voice note back at its length."""
    samples, seconds = decode_audio(voice_note(speech), "audio/ogg", 60)
    assert seconds == pytest.approx(speech.size / PIPELINE_RATE, abs=0.01)
