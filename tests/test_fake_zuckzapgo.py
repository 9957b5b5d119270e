"""The fake ZuckZapGo engine the agent's end-to-end tests run against: its API contract and what it measures.

Each test serves the fake from its own loop on a virtual clock (tests/support/clock.py), so the
durations it measures are exact; times are call seconds."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import wave

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.fake_zuckzapgo import build_fake_zuckzapgo
from tests.support.servers import ServedHere

TOKEN = "zzg-test-token"
FRAME_S = 0.06
NOT_ENABLED = "calls engine not enabled: PUT /call/config then reconnect"
LOUD = (np.sin(np.arange(960) * 2 * np.pi * 440 / 16000) * 8000).astype("<i2").tobytes()  # -15 dBFS
QUIET = bytes(1920)


@pytest.fixture()
def start_fake(clock):
    def start(port: int = 0, **options) -> ServedHere:
        return ServedHere(build_fake_zuckzapgo(TOKEN, clock=clock, **options), port=port)
    return start


@contextlib.asynccontextmanager
async def api(fake: ServedHere):
    """Serve the fake from the test's loop, and a client of its REST API."""
    async with fake.serving(), httpx.AsyncClient(base_url=fake.url, headers={"token": TOKEN}, timeout=5) as http:
        yield http


def stream(fake, call_id: str, token: str = TOKEN):
    return connect(f"{fake.ws_url}/call/{call_id}/stream?token={token}", max_size=None, max_queue=None)


async def answered_call(http: httpx.AsyncClient, **inbound) -> str:
    call_id = (await http.post("/_fake/inbound", json={"from": "5521999990000", **inbound})).json()["callId"]
    assert (await http.post("/call/answer", json={"callId": call_id})).status_code == 200
    return call_id


async def report(http: httpx.AsyncClient, call_id: str) -> dict:
    return (await http.get(f"/_fake/calls/{call_id}")).json()


async def closed_within(ws, seconds: float) -> bool:
    """Read (and drop) frames until the engine closes the socket; False if it is still open after `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            async for _frame in ws:
                pass
    except TimeoutError:
        return False
    return True


def test_envelopes_token_and_a_disabled_engine(start_fake, clock):
    async def main():
        fake = start_fake()
        async with api(fake) as http:
            config = await http.get("/call/config")
            assert config.status_code == 200
            assert config.json() == {"code": 200, "success": True, "data": {
                "callsEnabled": False, "callInboundMode": "webhook", "callRecord": False}}
            wrong = await http.get("/call/config", headers={"token": "nope"})
            assert (wrong.status_code, wrong.json()) == (401, {"code": 401, "error": "unauthorized", "success": False})
            unknown = {"callId": "call_0000000000000000"}
            for method, path, body in [("GET", "/call/status", None), ("POST", "/call/dial", {"phone": "5521988887777"}),
                                       ("POST", "/call/answer", unknown), ("POST", "/call/hangup", unknown)]:
                answer = await http.request(method, path, json=body)
                assert answer.status_code == 409
                assert answer.json() == {"code": 409, "error": NOT_ENABLED, "success": False}
            assert (await http.post("/_fake/inbound", json={"from": "5521999990000"})).status_code == 409
            log = (await http.get("/_fake/requests")).json()
            assert [(entry["method"], entry["path"], entry["token_ok"]) for entry in log[:3]] == [
                ("GET", "/call/config", True), ("GET", "/call/config", False), ("GET", "/call/status", True)]
            assert log[3]["json"] == {"phone": "5521988887777"}
    clock.run(main())


def test_config_takes_effect_only_after_a_reconnect(start_fake, clock):
    async def main():
        fake = start_fake()
        async with api(fake) as http:
            bad = await http.put("/call/config", json={"callInboundMode": "robot"})
            assert bad.status_code == 400 and "invalid call_inbound_mode" in bad.json()["error"]
            assert (await http.get("/webhook")).json()["data"] == {"webhook": "", "subscribe": ["Message"]}
            put = await http.put("/call/config", json={"callsEnabled": True, "callInboundMode": "manual",
                                                       "callProviderToken": "secret", "callGreeting": "oi"})
            assert put.json()["data"] == {"ok": True}
            stored = (await http.get("/call/config")).json()["data"]
            assert stored == {"callsEnabled": True, "callInboundMode": "manual", "callRecord": False,
                              "callGreeting": "oi"}  # callProviderToken is write-only
            assert (await http.get("/call/status")).status_code == 409  # stored, not active yet
            again = await http.post("/session/connect", json={"Subscribe": ["Message"], "Immediate": True})
            assert (again.status_code, again.json()["error"]) == (500, "Already Connected")
            assert (await http.post("/session/disconnect", json={})).status_code == 200
            assert (await http.get("/session/status")).json()["data"]["Connected"] is False
            twice = await http.post("/session/disconnect", json={})
            assert (twice.status_code, twice.json()["error"]) == (500, "No session")
            assert (await http.get("/call/status")).status_code == 409
            connected = await http.post("/session/connect", json={"Subscribe": ["Message", "Call"], "Immediate": True})
            assert connected.status_code == 200
            assert (await http.get("/call/status")).json()["data"] == {"calls": []}
            assert (await http.get("/webhook")).json()["data"]["subscribe"] == ["Message", "Call"]
            status = (await http.get("/session/status")).json()["data"]
            assert (status["Connected"], status["LoggedIn"], status["events"]) == (True, True, "Message,Call")
            log = (await http.get("/_fake/requests")).json()
            assert [(entry["method"], entry["path"]) for entry in log if entry["method"] != "GET"] == [
                ("PUT", "/call/config"), ("PUT", "/call/config"), ("POST", "/session/connect"),
                ("POST", "/session/disconnect"), ("POST", "/session/disconnect"), ("POST", "/session/connect")]
            connects = [entry["json"] for entry in log if entry["path"] == "/session/connect"]
            assert connects[-1] == {"Subscribe": ["Message", "Call"], "Immediate": True}
    clock.run(main())


def test_an_inbound_call_rings_is_answered_and_ends_by_timeout_or_session(start_fake, clock):
    async def main():
        fake = start_fake(enabled=True)
        async with api(fake) as http:
            call_id = (await http.post("/_fake/inbound", json={"from": "5521999990000"})).json()["callId"]
            assert re.fullmatch(r"call_[0-9a-f]{16}", call_id)
            [entry] = (await http.get("/call/status")).json()["data"]["calls"]
            assert {key: entry[key] for key in ("callId", "peer", "state", "direction", "video", "recording")} == {
                "callId": call_id, "peer": "5521999990000@s.whatsapp.net", "state": "ringing",
                "direction": "inbound", "video": False, "recording": False}
            assert (await http.post("/call/answer", json={"callId": call_id.upper()})).status_code == 404
            await asyncio.sleep(0.3)
            assert (await http.post("/call/answer", json={"callId": call_id})).json()["data"] == {"ok": True}
            assert (await http.post("/call/answer", json={"callId": call_id})).status_code == 409
            assert (await http.get("/call/status")).json()["data"]["calls"][0]["state"] == "active"
            answered = await report(http, call_id)
            assert answered["answer_delay_s"] == pytest.approx(0.3) and answered["answered_at"] > answered["ringing_at"]

            unanswered = (await http.post("/_fake/inbound",
                                          json={"from": "5521999990001", "ring_timeout_s": 0.2})).json()
            await asyncio.sleep(0.4)
            assert (await report(http, unanswered["callId"]))["ended_by"] == "timeout"
            assert [call["callId"] for call in (await http.get("/call/status")).json()["data"]["calls"]] == [call_id]

            await http.post("/session/disconnect")
            ended = await report(http, call_id)
            assert (ended["state"], ended["ended_by"]) == ("ended", "session")
            assert (await http.get("/_fake/calls")).json() == [call_id, unanswered["callId"]]
    clock.run(main())


def test_the_socket_carries_the_callers_audio_and_a_burst_queues_up(start_fake, clock):
    async def main():
        fake = start_fake(enabled=True)
        async with api(fake) as http:
            call_id = await answered_call(http, noise_dbfs=None)
            async with stream(fake, call_id) as ws:
                said = (await http.post(f"/_fake/calls/{call_id}/say", content=LOUD * 5)).json()
                assert 0 <= said["start_s"] and said["end_s"] == pytest.approx(said["start_s"] + 0.3)
                received = [await ws.recv() for _ in range(30)]
                assert {len(frame) for frame in received} == {1920}
                assert sum(frame == LOUD for frame in received) == 5
                assert received.count(QUIET) == 25

                await ws.send(LOUD * 10)  # 10 frames at once: a message larger than a frame is split
                for _ in range(10):
                    await ws.send(LOUD)
                await asyncio.sleep(30 * FRAME_S)
                await http.post("/call/hangup", json={"callId": call_id})
                assert await closed_within(ws, 0.5)
            result = await report(http, call_id)
            wav = wave.open(io.BytesIO((await http.get(f"/_fake/calls/{call_id}/heard.wav")).content))
        assert result["max_queue_frames"] >= 10
        first, second = result["client_log"][:2]
        assert (first["size"], first["queue_frames"], second["size"]) == (19200, 10, 1920)
        assert first["t"] > 0 and second["queue_frames"] in (10, 11)
        assert result["client_messages"] == 11 and result["client_bad_sizes"] == 1
        [(start, end)] = result["heard_segments"]
        assert end - start == pytest.approx(20 * FRAME_S)
        assert result["underrun_ticks"] == 0 and result["caller_segments"] == [[said["start_s"], said["end_s"]]]
        heard = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
        assert (wav.getframerate(), wav.getnchannels()) == (16000, 1)
        assert len(heard) == round(result["heard_s"] * 16000)
        assert heard[round(start * 16000):round(end * 16000)].tobytes() == LOUD * 20
    clock.run(main())


def test_paced_frames_keep_the_queue_short_and_gaps_count_as_underruns(start_fake, clock):
    async def main():
        fake = start_fake(enabled=True)
        async with api(fake) as http:
            call_id = await answered_call(http)
            async with stream(fake, call_id) as ws:
                await ws.send(LOUD)  # one frame of lead
                began = clock.now()
                for k in range(1, 31):
                    await clock.sleep(began + k * FRAME_S - clock.now())
                    if not 10 <= k < 13:  # fall behind real time for three frames
                        await ws.send(LOUD)
                await asyncio.sleep(10 * FRAME_S)  # 0.6 s of silence, then a new segment
                await ws.send(LOUD * 2)
                await asyncio.sleep(10 * FRAME_S)
            return await report(http, call_id)

    result = clock.run(main())
    assert result["max_queue_frames"] <= 3
    [(start, end), (again, stop)] = result["heard_segments"]  # a gap shorter than 0.3 s stays in one segment
    assert stop - again == pytest.approx(2 * FRAME_S) and again - end >= 0.3
    assert 2 <= result["underrun_ticks"] <= 5  # the lead frame covers one of the three
    assert end - start == pytest.approx((28 + result["underrun_ticks"]) * FRAME_S)


def test_a_partial_frame_is_counted_and_zero_padded_and_text_is_ignored(start_fake, clock):
    async def main():
        fake = start_fake(enabled=True)
        async with api(fake) as http:
            call_id = await answered_call(http)
            async with stream(fake, call_id) as ws:
                await ws.send("hello")
                await ws.send(LOUD[:1000])
                await asyncio.sleep(5 * FRAME_S)
            result = await report(http, call_id)
            wav = wave.open(io.BytesIO((await http.get(f"/_fake/calls/{call_id}/heard.wav")).content))
        heard = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 960)
        [loud] = [frame for frame in heard if frame.any()]
        assert loud.tobytes() == LOUD[:1000] + bytes(920)
        assert (result["client_messages"], result["client_bad_sizes"], result["client_text_messages"]) == (1, 1, 1)
    clock.run(main())


def test_a_remote_hangup_leaves_the_socket_open_for_a_while(start_fake, clock):
    async def main():
        fake = start_fake(enabled=True, ws_close_after_s=1.5)
        async with api(fake) as http:
            call_id = await answered_call(http)
            async with stream(fake, call_id) as ws:
                await ws.recv()
                assert (await http.post(f"/_fake/calls/{call_id}/hangup")).status_code == 200
                hung_up = clock.now()
                assert (await http.get("/call/status")).json()["data"]["calls"] == []
                await ws.send(LOUD * 2)
                assert await closed_within(ws, 2)
                waited = clock.now() - hung_up
            result = await report(http, call_id)
        assert waited == pytest.approx(1.5)
        assert (result["ended_by"], result["ws_closed_by"], result["client_frames_after_end"]) == ("peer", "engine", 2)
    clock.run(main())


def test_app_hangup_closes_the_socket_at_once_and_sockets_are_refused(start_fake, clock):
    async def main():
        fake = start_fake(enabled=True)
        async with api(fake) as http:
            call_id = await answered_call(http)
            for target, token, status in [(call_id, "nope", 401), ("call_0123456789abcdef", TOKEN, 404)]:
                with pytest.raises(InvalidStatus) as refused:
                    await stream(fake, target, token)
                assert refused.value.response.status_code == status
            async with stream(fake, call_id) as ws:
                with pytest.raises(InvalidStatus) as second:
                    await stream(fake, call_id)
                assert second.value.response.status_code == 409
                assert (await http.post("/call/hangup", json={"callId": call_id})).status_code == 200
                assert await closed_within(ws, 0.3)
                with pytest.raises(ConnectionClosed):
                    await ws.send(LOUD)
            assert (await http.post("/call/hangup", json={"callId": call_id})).status_code == 404
            with pytest.raises(InvalidStatus) as ended:
                await stream(fake, call_id)
            assert ended.value.response.status_code == 404
            result = await report(http, call_id)
        assert (result["ended_by"], result["ws_closed_by"], result["ws_refused"]) == ("app", "engine", 1)
        assert (result["hangup_requests"], result["ws_connections"]) == (2, 1)
    clock.run(main())


def test_dial_validates_reaches_and_is_answered(start_fake, clock):
    async def main():
        fake = start_fake(enabled=True, answer_after_s=0.4)  # rings at 0.2 s
        async with api(fake) as http:
            for phone in ["+5521988887777", "55 21 98888", "1234567890123456", 5521988887777]:
                assert (await http.post("/call/dial", json={"phone": phone})).status_code == 400
            await http.put("/_fake/unreachable", json={"phones": ["5521911112222"]})
            unreachable = await http.post("/call/dial", json={"phone": "5521911112222"})
            assert (unreachable.status_code, unreachable.json()["error"]) == (502, "peer unreachable")
            call_id = (await http.post("/call/dial", json={"phone": "5521988887777"})).json()["data"]["callId"]
            states = []
            for _ in range(30):
                [call] = (await http.get("/call/status")).json()["data"]["calls"]
                if not states or states[-1] != call["state"]:
                    states.append(call["state"])
                await asyncio.sleep(0.025)
            assert states == ["calling", "ringing", "active"]
            assert (call["direction"], call["peer"]) == ("outbound", "5521988887777@s.whatsapp.net")
            result = await report(http, call_id)
            assert result["answered_at"] - result["ringing_at"] == pytest.approx(0.2, abs=0.05)
    clock.run(main())


def test_an_inbound_offer_is_posted_to_the_webhook_while_subscribed_to_calls(start_fake, clock):
    received = []

    async def hook(request: Request):
        received.append(await request.json())
        return JSONResponse({"ok": True})

    receiver = ServedHere(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))

    async def main():
        fake = start_fake(enabled=True)
        async with receiver.serving(), api(fake) as http:
            await http.put("/_fake/webhook", json={"url": f"{receiver.url}/hook"})
            call_id = (await http.post("/_fake/inbound", json={"from": "5521999990000"})).json()["callId"]
            await asyncio.sleep(0.3)
            assert received == [{"type": "v1.call.offer",
                                 "event": {"callId": call_id, "from": "5521999990000@s.whatsapp.net"}}]
            assert (await report(http, call_id))["webhook_status"] == 200
            await http.post("/session/disconnect")
            await http.post("/session/connect", json={"Subscribe": ["Message"]})
            await http.post("/_fake/inbound", json={"from": "5521999990001"})
            await asyncio.sleep(0.3)
            assert len(received) == 1
    clock.run(main())


def test_a_restart_on_the_same_port_keeps_the_config_and_drops_the_calls(start_fake, clock):
    async def before():
        async with api(first) as http:
            await http.put("/call/config", json={"callsEnabled": True, "callInboundMode": "manual"})
            await http.post("/session/disconnect")
            await http.post("/session/connect", json={"Subscribe": ["Message", "Call"], "Immediate": True})
            return (await http.post("/_fake/inbound", json={"from": "5521999990000"})).json()["callId"]

    async def after():
        async with api(second) as http:
            assert (await http.get("/call/config")).json()["data"]["callInboundMode"] == "manual"
            assert (await http.get("/call/status")).json()["data"] == {"calls": []}
            assert (await http.get("/webhook")).json()["data"]["subscribe"] == ["Message", "Call"]
            assert (await http.get("/_fake/calls")).json() == []
            assert (await http.get(f"/_fake/calls/{call_id}")).status_code == 404
            assert (await http.get("/_fake/requests")).json()[0]["path"] == "/call/config"

    first = start_fake()
    call_id = clock.run(before())
    second = start_fake(port=first.port, state=first.app.state.fake_state)
    assert second.url == first.url
    clock.run(after())
