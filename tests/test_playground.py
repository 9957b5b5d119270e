"""The playground's WebSocket and the /calls API on the real service (scripted Whisper, test voices, the fake
LLM), over a real socket with a Python WebSocket client: a whole browser call and its record read back, a
caller talking over the greeting, the agent's port serving the same, the refusals (wrong token, audio before
the start, a bad page number, an id outside the records), and the records' paging on files written here."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from zapvoice.agent.browser.records import calls_page, one_call
from zapvoice.agent.browser.server import Playground
from zapvoice.agent.zuckzapgo.webhook import create_agent_app
from zapvoice.providers.service import create_app

from tests.conftest import SCRIPTED_TEXT, TOKEN
from tests.support.servers import serve_config_in_thread
from tests.support.speech import speak
from zapvoice.audio import to_int16
from zapvoice.composition import service_engines
from zapvoice.http_server import server_config

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


def test_talking_over_the_greeting_cuts_it_and_the_record_keeps_what_was_heard(playground):
    async def call() -> tuple[dict, dict]:
        async with connect(f"{playground.url.replace('http', 'ws')}/playground/ws") as ws:
            await ws.send(json.dumps({"type": "start", "token": TOKEN}))
            heard: list[bytes] = []
            await next_event(ws, heard)  # ready
            while len(heard) < 12:  # a third of the greeting is out
                heard.append(await asyncio.wait_for(ws.recv(), 30))
            pcm = to_int16(np.concatenate([speak("olá, tudo bem?"), np.zeros(16000, np.float32)])).tobytes()
            for at in range(0, len(pcm), FRAME):
                await ws.send(pcm[at:at + FRAME])
            cut, answer = await next_event(ws, heard), await next_event(ws, heard)
            await ws.send(json.dumps({"type": "hangup"}))
            return cut, answer
    cut, answer = asyncio.run(call())
    greeting = "Olá! Como posso ajudar?".split()
    said = cut["assistant"].split()
    assert cut["interrupted"] and cut["user"] == "" and 0 < len(said) < len(greeting) and said == greeting[:len(said)]
    assert answer["user"] == SCRIPTED_TEXT and not answer["interrupted"]


def test_the_agent_port_serves_the_playground_too(make_settings):
    class IdleAgent:
        calls: dict = {}
        reachable = None

    settings = make_settings()
    engines = service_engines(settings)
    app = create_agent_app(IdleAgent(), None, "off", TOKEN, playground=Playground(settings, engines))
    agent = serve_config_in_thread(server_config(app, settings.service, host="127.0.0.1", port=0))

    async def call() -> list[dict]:
        async with connect(f"{agent.url.replace('http', 'ws')}/playground/ws") as ws:
            await ws.send(json.dumps({"type": "start", "token": TOKEN}))
            ready = await next_event(ws, [])
            await ws.send(json.dumps({"type": "hangup"}))
            events = [ready]
            while (event := await next_event(ws, []))["type"] != "ended":
                events.append(event)
            return [*events, event]
    try:
        assert httpx.get(f"{agent.url}/playground").status_code == 200
        events = asyncio.run(call())
    finally:
        agent.stop()
        asyncio.run(engines.aclose())
    assert events[0]["type"] == "ready" and events[-1] == {"type": "ended", "reason": "the caller hung up"}


def write_record(directory, day: str, name: str, lines: list, mtime: float) -> None:
    path = directory / day / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines))
    os.utime(path, (mtime, mtime))


def test_the_records_are_paged_newest_first_and_survive_a_cut_line(tmp_path):
    started = {"event": "call_started", "at": 1.0, "transport": "gateway", "direction": "inbound", "caller": "5521"}
    turn = {"event": "turn", "user": "oi", "assistant": "olá", "interrupted": False, "stt_ms": 300.0}
    for n in range(5):
        write_record(tmp_path, "2026-01-02", f"call-{n}", [started | {"call_id": f"call-{n}"}, turn,
                     {"event": "call_ended", "reason": "the caller hung up", "duration_s": 4.5}], mtime=1000 + n)
    write_record(tmp_path, "2026-01-01", "old", [started | {"call_id": "old"}, '{"event": "tu'], mtime=5000)
    write_record(tmp_path, "2026-01-02", ".hidden", [started], mtime=9000)
    (tmp_path / "notes").mkdir()
    first, last = calls_page(tmp_path, 1, 4), calls_page(tmp_path, 2, 4)
    assert [c["call_id"] for c in first["calls"]] == ["call-4", "call-3", "call-2", "call-1"]
    assert [c["call_id"] for c in last["calls"]] == ["call-0", "old"]
    assert (first["pages"], first["total"]) == (2, 6)
    assert first["calls"][0] | {"call_id": None} == {
        "id": "2026-01-02/call-4", "call_id": None, "started_at": 1.0, "transport": "gateway", "direction": "inbound",
        "caller": "5521", "called": "", "turns": 1, "duration_s": 4.5, "ended": "the caller hung up"}
    assert last["calls"][1] | {"id": None} == {  # cut mid-write by a crash: no end, the cut line skipped
        "id": None, "call_id": "old", "started_at": 1.0, "transport": "gateway", "direction": "inbound",
        "caller": "5521", "called": "", "turns": 0, "duration_s": None, "ended": None}
    assert one_call(tmp_path, "2026-01-02", "call-0")["turns"] == [turn]
    assert calls_page(tmp_path / "absent", 1, 20) == {"page": 1, "per_page": 20, "pages": 1, "total": 0, "calls": []}
    for page, per_page in ((0, 20), (1, 0), (1, 101)):
        with pytest.raises(ValueError):
            calls_page(tmp_path, page, per_page)


def test_a_page_stats_only_the_records_of_the_days_it_spans(tmp_path, monkeypatch):
    """Day folders sort by name, call ids do not: a page orders (stats) one day's files, not the whole history."""
    for day, calls in (("2026-01-03", 3), ("2026-01-02", 3), ("2026-01-01", 50)):
        for n in range(calls):
            write_record(tmp_path, day, f"{day}-call-{n}", [{"event": "call_started"}], mtime=1000 + n)
    stated: list[Path] = []
    real_stat = Path.stat

    def stat(path, *args, **kwargs):
        stated.append(path)
        return real_stat(path, *args, **kwargs)
    monkeypatch.setattr(Path, "stat", stat)
    first, second = calls_page(tmp_path, 1, 2), calls_page(tmp_path, 2, 2)
    records = {path.parent.name for path in stated if path.suffix == ".jsonl"}
    assert records == {"2026-01-03", "2026-01-02"}  # never the 50 calls of the first day
    assert [c["id"] for c in first["calls"] + second["calls"]] == [
        "2026-01-03/2026-01-03-call-2", "2026-01-03/2026-01-03-call-1", "2026-01-03/2026-01-03-call-0",
        "2026-01-02/2026-01-02-call-2"]
    assert (first["total"], first["pages"]) == (56, 28)


def test_the_bot_ends_the_call_after_its_goodbye_is_heard(make_service, tmp_path):
    service = make_service(llm_model="goodbye", agent_record_dir=tmp_path / "calls", agent_greeting="")

    async def call() -> tuple[list[dict], list[bytes]]:
        events, audio = [], []
        async with connect(f"{service.url.replace('http', 'ws')}/playground/ws") as ws:
            await ws.send(json.dumps({"type": "start", "token": TOKEN}))
            events.append(await next_event(ws, audio))
            pcm = to_int16(np.concatenate([speak("tchau"), np.zeros(16000, np.float32)])).tobytes()
            for at in range(0, len(pcm), FRAME):
                await ws.send(pcm[at:at + FRAME])
            events.append(await next_event(ws, audio))
            events.append(await next_event(ws, audio))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
        return events, audio
    (ready, turn, ended), audio = asyncio.run(call())
    assert turn["assistant"] == "Obrigado pela ligação, tchau!" and audio
    assert ended == {"type": "ended", "reason": "the bot ended the call"}


def test_a_call_outlives_the_http_deadlines_of_its_upgrade_request(make_service):
    """The WebSocket starts as an HTTP request whose body h11 never sees end: the body deadline must not fire."""
    edge = make_service(header_timeout_s=0.3, body_timeout_s=0.3, keep_alive_s=0.3)

    async def call() -> list[dict]:
        async with connect(f"{edge.url.replace('http', 'ws')}/playground/ws") as ws:
            await ws.send(json.dumps({"type": "start", "token": TOKEN}))
            events = [await next_event(ws, []), await next_event(ws, [])]  # ready; the greeting, 2 s of it played
            await ws.send(json.dumps({"type": "hangup"}))
            return [*events, await next_event(ws, [])]
    ready, greeted, ended = asyncio.run(call())
    assert greeted["assistant"] == "Olá! Como posso ajudar?"
    assert ended == {"type": "ended", "reason": "the caller hung up"}


@pytest.mark.parametrize("allow_no_auth", [False, True])
def test_with_no_token_set_the_playground_and_calls_are_open_only_where_the_owner_said_so(
        make_service, tmp_path, allow_no_auth):
    """The agent's port may be public and /calls shows callers' numbers and words: no service.token means no
    access, unless service.allow_no_auth says the owner wants it open."""
    service = make_service(token=None, allow_no_auth=allow_no_auth, agent_record_dir=tmp_path)

    async def start() -> dict:
        async with connect(f"{service.url.replace('http', 'ws')}/playground/ws") as ws:
            await ws.send(json.dumps({"type": "start", "token": "anything"}))
            return json.loads(await asyncio.wait_for(ws.recv(), 30))

    listing = httpx.get(f"{service.url}/calls/api")
    first = asyncio.run(start())
    if allow_no_auth:
        assert listing.status_code == 200 and first["type"] == "ready"
    else:
        refusal = "no service.token is set: set one (or service.allow_no_auth) to use the playground and /calls"
        assert (listing.status_code, listing.json()) == (401, {"error": refusal})
        assert first == {"type": "error", "error": refusal}


def test_a_message_far_larger_than_a_frame_closes_the_connection(playground):
    """One message of 4 s of audio would be processed at once on the event loop: the server closes instead."""
    async def attempt() -> int:
        async with connect(f"{playground.url.replace('http', 'ws')}/playground/ws", max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "token": TOKEN}))
            await next_event(ws, [])  # ready
            await ws.send(b"\x00" * (128 * 1024))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 30)
            return closed.value.rcvd.code
    assert asyncio.run(attempt()) == 1009  # message too big


def test_a_call_cut_by_the_shutdown_is_recorded_as_zapvoice_stopping(make_settings, tmp_path):
    """uvicorn closes the page's socket (1012) before the service's lifespan ends: that is not the page leaving."""
    settings = make_settings(agent_record_dir=tmp_path, agent_idle_prompt_s=60.0)
    service = serve_config_in_thread(server_config(create_app(settings, service_engines(settings)), settings.service,
                                                   host="127.0.0.1", port=0))

    async def call() -> int:
        async with connect(f"{service.ws_url}/playground/ws") as ws:
            await ws.send(json.dumps({"type": "start", "token": TOKEN}))
            assert (await next_event(ws, []))["type"] == "ready"
            stopping = asyncio.create_task(asyncio.to_thread(service.stop))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 30)
            await stopping
            return closed.value.rcvd.code
    assert asyncio.run(call()) == 1012
    (record,) = tmp_path.rglob("*.jsonl")
    ended = [json.loads(line) for line in record.read_text().splitlines()][-1]
    assert ended["event"] == "call_ended" and ended["reason"] == "zapvoice stopped"
