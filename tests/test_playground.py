"""The playground's WebSocket and the /calls API on the real service (scripted Whisper, test voices, the fake
LLM), over a real socket with a Python WebSocket client: a whole browser call, its record read back, and
the refusals (wrong token, audio before the start, a bad page number, a path outside the records)."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import SCRIPTED_TEXT, TOKEN
from tests.support.speech import speak
from zapvoice.audio import to_int16

FRAME = 1920


@pytest.fixture(scope="module")
def playground(make_service, tmp_path_factory):
    return make_service(agent_record_dir=tmp_path_factory.mktemp("calls"), agent_idle_prompt_s=60.0)


async def next_event(ws, audio: list[bytes]) -> dict:
    """The next JSON event; the bot's audio that comes before it goes into `audio`."""
    while True:
        message = await asyncio.wait_for(ws.recv(), 30)
        if isinstance(message, bytes):
            audio.append(message)
        else:
            return json.loads(message)


async def a_call(url: str) -> tuple[list[dict], list[bytes], list[bytes]]:
    """Start, hear the greeting, say something (then silence), hear the answer, hang up."""
    events, greeting, answer = [], [], []
    async with connect(f"{url}/playground/ws") as ws:
        await ws.send(json.dumps({"type": "start", "token": TOKEN}))
        events.append(await next_event(ws, greeting))
        events.append(await next_event(ws, greeting))  # the greeting's turn, once it has been played
        pcm = to_int16(np.concatenate([speak("olá, tudo bem?"), np.zeros(16000, np.float32)])).tobytes()
        for at in range(0, len(pcm), FRAME):
            await ws.send(pcm[at:at + FRAME])
        events.append(await next_event(ws, answer))
        await ws.send(json.dumps({"type": "hangup"}))
        events.append(await next_event(ws, answer))
    return events, greeting, answer


def test_a_browser_call_is_answered_and_recorded(playground):
    url = playground.url.replace("http", "ws")
    events, greeting, answer = asyncio.run(a_call(url))
    ready, greeted, turn, ended = events
    assert ready["type"] == "ready" and ready["call_id"].startswith("browser-") and ready["frame_bytes"] == FRAME
    assert greeted == greeted | {"type": "turn", "user": "", "assistant": "Olá! Como posso ajudar?"}
    assert turn["type"] == "turn" and turn["user"] == SCRIPTED_TEXT
    assert turn["assistant"] == f"Você disse: {SCRIPTED_TEXT}"
    assert all(turn[key] is not None for key in ("stt_ms", "first_token_ms", "first_audio_ms"))
    assert ended == {"type": "ended", "reason": "the caller hung up"}
    for speech in (greeting, answer):  # whole frames of audible speech
        assert speech and {len(frame) for frame in speech} == {FRAME}
        assert np.abs(np.frombuffer(b"".join(speech), "<i2")).max() > 1000

    with httpx.Client(base_url=playground.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        listing = http.get("/calls/api", params={"per_page": 5}).json()
        (call,) = [c for c in listing["calls"] if c["call_id"] == ready["call_id"]]
        assert call | {"started_at": None, "duration_s": None} == {
            "id": call["id"], "call_id": ready["call_id"], "started_at": None, "transport": "browser",
            "direction": "inbound", "caller": "playground", "called": "", "turns": 2, "duration_s": None,
            "ended": "the caller hung up"}
        assert call["duration_s"] > 0 and listing["page"] == 1 and listing["total"] >= 1
        detail = http.get(f"/calls/api/{call['id']}").json()
        assert [t["user"] for t in detail["turns"]] == ["", SCRIPTED_TEXT]
        assert detail["turns"][1]["first_audio_ms"] == turn["first_audio_ms"]


def test_the_calls_api_pages_and_refuses(playground):
    with httpx.Client(base_url=playground.url) as http:
        assert http.get("/calls/api").status_code == 401
        assert http.get("/calls/api", headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert http.get("/calls/api", params={"page": "0"}, headers=auth).status_code == 422
        assert http.get("/calls/api", params={"page": "x"}, headers=auth).status_code == 422
        for path, error in (("2026-01-01/.hidden", "2026-01-01/.hidden is not a call record id"),
                            ("today/x", "today/x is not a call record id"),
                            ("2026-01-01/nobody", "no call record 2026-01-01/nobody")):
            response = http.get(f"/calls/api/{path}", headers=auth)
            assert (response.status_code, response.json()) == (404, {"error": error})
        far = http.get("/calls/api", params={"page": "999"}, headers=auth).json()
        assert far["calls"] == [] and far["page"] == 999


def test_the_pages_and_their_files_are_served_without_a_token(playground):
    with httpx.Client(base_url=playground.url) as http:
        for path, kind in (("/playground", "text/html"), ("/calls", "text/html"),
                           ("/playground/static/playground.js", "javascript"),
                           ("/playground/static/worklet.js", "javascript"),
                           ("/playground/static/calls.js", "javascript"), ("/playground/static/style.css", "text/css")):
            response = http.get(path)
            assert response.status_code == 200 and kind in response.headers["content-type"], path
        assert "playground.js" in http.get("/playground").text


@pytest.mark.parametrize("first, refusal", [
    ({"type": "start", "token": "wrong"}, "missing or wrong token (service.token)"),
    ({"type": "start"}, "missing or wrong token (service.token)"),
    ({"type": "hangup", "token": TOKEN}, "the first message must be a start, not 'hangup'"),
    (b"\x00\x01" * 960, 'the first message must be {"type": "start", "token": "..."}, not audio'),
    ("not json", "a text message that is not JSON"),
])
def test_a_connection_that_does_not_start_properly_is_refused(playground, first, refusal):
    async def attempt():
        async with connect(f"{playground.url.replace('http', 'ws')}/playground/ws") as ws:
            await ws.send(first if isinstance(first, (bytes, str)) else json.dumps(first))
            error = json.loads(await asyncio.wait_for(ws.recv(), 10))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return error, closed.value.rcvd.code
    error, code = asyncio.run(attempt())
    assert error == {"type": "error", "error": refusal} and code == 1008
