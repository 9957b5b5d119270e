"""A fake ZuckZapGo calls engine (Native VoIP, manual mode) for end-to-end tests of the voice agent.

Product-facing API (docs/contracts.md §2, docs/zuckzapgo.md §1-§5, wuzapi's shapes for /session and /webhook).
REST takes the header `token:` and answers {"code", "data", "success": true} or {"code", "error", "success": false}
with the same HTTP status (401 on a wrong token):
  GET|PUT /call/config       the stored config (callProviderToken write-only); active only after the next connect
  POST /session/disconnect   ends every live call (500 "No session" when not connected)
  POST /session/connect      {"Subscribe": [...], "Immediate": true} (500 "Already Connected"); attaches the engine
  GET /session/status        {"Connected", "LoggedIn", "events": "Message,Call", "webhook"}
  GET /webhook               {"webhook", "subscribe": [...]}
  GET /call/status, POST /call/dial|answer|hangup
                             409 "calls engine not enabled: ..." unless connected with callsEnabled active
  GET /call/{callId}/events  Server-Sent Events of the call's phase (newer builds; build_fake_zuckzapgo's call_events)
  WS /call/{callId}/stream?token=
                             refused before the upgrade with HTTP 401 (token), 404 (unknown or ended call)
                             or 409 (a socket is already open on the call)
Media, while a call is active, one tick every `frame_s` on absolute deadlines from the answer (tick k due
k * frame_s later): the engine sends the client one 1920-byte frame of the caller's audio (what the harness made it
say, else noise at the call's noise_dbfs) and pulls ONE frame of what the client sent (silence when nothing is
queued) into the call's heard track. Client messages (binary; text is counted and ignored) are split into
960-sample frames, a trailing partial one zero-padded. /call/hangup, disconnect and the ring timeout close the
socket at once; a remote hangup takes the call out of /call/status at once and closes the socket
`ws_close_after_s` later. Outbound calls go calling → ringing → active after `answer_after_s` (None: never
answered, they end by timeout after 30 s like an unanswered inbound call); their callee makes -60 dBFS noise.

Call seconds: one frame is 60 ms of audio, so `frame_s` below 0.06 runs the whole fake faster than its clock
(real time, or a test's VirtualClock when served from that test's loop). Every duration it takes (answer_after_s,
ws_close_after_s, ring_timeout_s) and every time it reports is in call seconds: clock seconds x 0.06 / frame_s.
Reports: *_at since the fake started; client_log t, heard and caller segments since the answer, where tick k
covers [k * 0.06, (k + 1) * 0.06).

Harness (no token, plain JSON, errors {"error"} with a 4xx status):
  POST /_fake/inbound {"from", "noise_dbfs": -60 | null, "ring_timeout_s": 30} → {"callId"}  a ringing call
  PUT  /_fake/webhook {"url"}              offers are POSTed there as {"type": "v1.call.offer", "event": ...}
  PUT  /_fake/unreachable {"phones"}       /call/dial to these answers 502
  POST /_fake/calls/{id}/say  raw s16le    the caller says it after what is queued → {"start_s", "end_s"}
  POST /_fake/calls/{id}/hangup            remote hangup (ended_by "peer")
  GET  /_fake/calls/{id}                   the report (see Call.report); GET .../heard.wav the heard track
  GET  /_fake/calls, GET /_fake/requests   call ids; the product REST requests (t, method, path, json, token_ok)

Assumptions where the spec is silent: an inbound call rings (and its offer webhook goes out) only while the
session subscribes to "Call", "CallOffer" or "All", else it is dropped unlisted, as with skip calls on
(GET /session/skipcalls/config {"enabled", "global"}); a connect keeps only FakeState.known_events; a connect without Subscribe subscribes to "All"; audio a client sends before the answer waits in
its queue; non-manual inbound modes are stored but the fake always behaves as manual.
Restart: stop the server and serve `build_fake_zuckzapgo(token, state=old_app.state.fake_state)` on the same
port. FakeState (config, subscriptions, connected flag, webhook, unreachable numbers) survives, as in wuzapi's
database; calls, sockets and the request log do not. A session connected at shutdown reconnects at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import secrets
import wave
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from zapvoice.agent.clock import Clock, MonotonicClock

RATE = 16000
FRAME_BYTES = 1920
FRAME_CALL_S = 0.06                     # the audio in one frame: 960 samples
SILENCE = bytes(FRAME_BYTES)
AUDIBLE_RMS = 32768 * 10 ** (-45 / 20)  # a heard frame is audible above -45 dBFS
HOLD_S = 0.3                            # audible frames closer than this form one heard segment
OUTBOX_FRAMES = 50                      # frames waiting for a client that does not read are dropped beyond this
OUTBOUND_RING_TIMEOUT_S = 30.0
MODES = ("manual", "bot", "ivr", "ai", "webhook", "reject")
RINGS = {"All", "Call", "CallOffer"}  # subscriptions under which an inbound offer rings (guide: Call; Postman: CallOffer)
NOT_ENABLED = "calls engine not enabled: PUT /call/config then reconnect"


class FakeError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class FakeState:
    """What survives a restart."""
    config: dict = field(default_factory=lambda: {"callsEnabled": False, "callInboundMode": "webhook",
                                                  "callRecord": False})
    subscribe: list[str] = field(default_factory=lambda: ["Message"])
    connected: bool = True
    webhook_url: str = ""
    unreachable: set[str] = field(default_factory=set)
    # The event names the instance knows: a connect keeps only these, as wuzapi discards the others (None: any).
    # The guide's reading is {"Message", "Call", ...}; the Postman collection's has CallOffer... and no Call.
    known_events: set[str] | None = None
    skip_calls: bool = False  # /session/skipcalls/config enabled: inbound calls are dropped before they ring
    global_skip_calls: bool = False  # the server's GLOBAL_SKIP_CALLS: the same for every instance

    @classmethod
    def fresh(cls, enabled: bool) -> FakeState:
        if not enabled:
            return cls()
        return cls(config={"callsEnabled": True, "callInboundMode": "manual", "callRecord": False},
                   subscribe=["Message", "Call"])


def frames_of(data: bytes) -> list[bytes]:
    """Whole samples in 1920-byte frames, the last one zero-padded."""
    data = data[: len(data) // 2 * 2]
    return [data[i:i + FRAME_BYTES].ljust(FRAME_BYTES, b"\0") for i in range(0, len(data), FRAME_BYTES)]


def audible(frame: bytes) -> bool:
    samples = np.frombuffer(frame, "<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples ** 2))) > AUDIBLE_RMS


def digits(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,15}", value):
        raise FakeError(400, "phone must be E.164 digits without '+' (at most 15)")
    return value


class Call:
    def __init__(self, phone: str, direction: str, noise_dbfs: float | None, created: float):
        self.id = "call_" + secrets.token_hex(8)
        self.phone, self.direction, self.noise_dbfs = phone, direction, noise_dbfs
        self.state = "calling"
        self.started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.created = created
        self.ringing_at: float | None = None
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.ended_by: str | None = None
        self.rng = np.random.default_rng()
        self.say_queue: deque[bytes] = deque()     # the caller's audio still to be sent
        self.client_queue: deque[bytes] = deque()  # the client's audio not pulled yet
        self.heard: list[bytes] = []               # one frame per tick
        self.audible: list[bool] = []
        self.starved: list[bool] = []              # the client queue was empty at that tick
        self.outbox: asyncio.Queue | None = None   # frames to the open socket; None closes it
        self.ws_connections = self.ws_refused = 0
        self.ws_closed_by: str | None = None
        self.client_log: list[dict] = []
        self.client_bad_sizes = self.client_text_messages = self.client_frames_after_end = 0
        self.max_queue_frames = 0
        self.caller_segments: list[list[float]] = []
        self.hangup_requests = 0
        self.webhook_status: int | str | None = None

    @property
    def peer(self) -> str:
        return f"{self.phone}@s.whatsapp.net"

    def status_entry(self) -> dict:
        return {"callId": self.id, "peer": self.peer, "state": self.state, "direction": self.direction,
                "video": False, "recording": False, "startedAt": self.started_at}

    def client_audio(self, data: bytes, now: float) -> None:
        frames = frames_of(data)
        if len(data) != FRAME_BYTES:
            self.client_bad_sizes += 1
        if self.state == "ended":
            self.client_frames_after_end += len(frames)
        else:
            self.client_queue.extend(frames)
            self.max_queue_frames = max(self.max_queue_frames, len(self.client_queue))
        since = None if self.answered_at is None else round(now - self.answered_at, 3)
        self.client_log.append({"size": len(data), "t": since, "queue_frames": len(self.client_queue)})

    def tick(self) -> None:
        starved = not self.client_queue
        frame = SILENCE if starved else self.client_queue.popleft()
        self.heard.append(frame)
        self.audible.append(audible(frame))
        self.starved.append(starved)
        out = self.say_queue.popleft() if self.say_queue else self.noise()
        if self.outbox is not None and self.ws_closed_by is None and self.outbox.qsize() < OUTBOX_FRAMES:
            self.outbox.put_nowait(out)

    def noise(self) -> bytes:
        if self.noise_dbfs is None:
            return SILENCE
        level = 32768 * 10 ** (self.noise_dbfs / 20)
        return np.clip(self.rng.standard_normal(FRAME_BYTES // 2) * level, -32768, 32767).astype("<i2").tobytes()

    def say(self, pcm: bytes) -> dict:
        start = (len(self.heard) + len(self.say_queue)) * FRAME_CALL_S
        self.say_queue.extend(frames_of(pcm))
        segment = [round(start, 3), round(start + len(pcm) / 2 / RATE, 3)]
        self.caller_segments.append(segment)
        return {"start_s": segment[0], "end_s": segment[1]}

    def close_socket(self) -> None:
        if self.outbox is not None and self.ws_closed_by is None:
            self.ws_closed_by = "engine"
            self.outbox.put_nowait(None)

    def heard_wav(self) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(b"".join(self.heard))
        return buffer.getvalue()

    def report(self) -> dict:
        segments: list[list[int]] = []  # [first tick, last tick + 1]
        hold = HOLD_S / FRAME_CALL_S
        for k, loud in enumerate(self.audible):
            if loud and segments and k - segments[-1][1] < hold:
                segments[-1][1] = k + 1
            elif loud:
                segments.append([k, k + 1])
        delay = None if self.answered_at is None else round(self.answered_at - self.ringing_at, 3)
        return {
            "callId": self.id, "peer": self.peer, "direction": self.direction, "state": self.state,
            "ended_by": self.ended_by, "ringing_at": self.ringing_at, "answered_at": self.answered_at,
            "ended_at": self.ended_at, "answer_delay_s": delay,
            "ws_connections": self.ws_connections, "ws_refused": self.ws_refused, "ws_closed_by": self.ws_closed_by,
            "client_messages": len(self.client_log), "client_bad_sizes": self.client_bad_sizes,
            "client_text_messages": self.client_text_messages, "client_log": self.client_log,
            "max_queue_frames": self.max_queue_frames, "client_frames_after_end": self.client_frames_after_end,
            "heard_s": round(len(self.heard) * FRAME_CALL_S, 3),
            "heard_segments": [[round(a * FRAME_CALL_S, 3), round(b * FRAME_CALL_S, 3)] for a, b in segments],
            "underrun_ticks": sum(sum(self.starved[a:b]) for a, b in segments),
            "caller_segments": self.caller_segments, "hangup_requests": self.hangup_requests,
            "webhook_status": self.webhook_status,
        }


class FakeEngine:
    def __init__(self, token: str, frame_s: float, state: FakeState, answer_after_s: float | None,
                 ws_close_after_s: float, clock: Clock, call_events: str = "none"):
        self.token, self.frame_s, self.state = token, frame_s, state
        self.call_events = call_events
        self.speed = FRAME_CALL_S / frame_s
        self.answer_after_s, self.ws_close_after_s = answer_after_s, ws_close_after_s
        self.clock = clock
        self.origin = clock.now()
        self.active = dict(state.config)  # the config the engine attached with at the last connect
        self.calls: dict[str, Call] = {}
        self.requests: list[dict] = []
        self.tasks: set[asyncio.Task] = set()

    def now(self) -> float:
        """Call seconds since the fake started."""
        return round((self.clock.now() - self.origin) * self.speed, 3)

    async def sleep(self, call_s: float) -> None:
        await self.clock.sleep(max(0.0, call_s) / self.speed)

    @property
    def enabled(self) -> bool:
        return self.state.connected and self.active.get("callsEnabled") is True

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app):
        yield
        for task in list(self.tasks):
            task.cancel()

    # ---- call lifecycle

    def live(self, call_id: object) -> Call:
        call = self.calls.get(call_id) if isinstance(call_id, str) else None
        if call is None or call.state == "ended":
            raise FakeError(404, "call not found")
        return call

    def new_call(self, phone: str, direction: str, noise_dbfs: float | None) -> Call:
        call = Call(phone, direction, noise_dbfs, self.now())
        self.calls[call.id] = call
        return call

    def ring(self, call: Call, timeout_s: float) -> None:
        call.state, call.ringing_at = "ringing", self.now()
        self.spawn(self._ring_timeout(call, timeout_s))

    async def _ring_timeout(self, call: Call, timeout_s: float) -> None:
        await self.sleep(timeout_s)
        if call.state == "ringing":
            self.end(call, "timeout")

    def activate(self, call: Call) -> None:
        call.state, call.answered_at = "active", self.now()
        self.spawn(self._media(call, self.clock.now()))

    async def _media(self, call: Call, answered: float) -> None:
        ticks = 0
        while call.state == "active":
            call.tick()
            ticks += 1
            await self.clock.sleep(answered + ticks * self.frame_s - self.clock.now())

    async def _outbound(self, call: Call) -> None:
        after = self.answer_after_s
        await self.sleep(0.3 if after is None else min(0.3, after / 2))
        if call.state != "calling":
            return
        self.ring(call, OUTBOUND_RING_TIMEOUT_S)
        if after is not None:
            await self.sleep(call.created + after - self.now())
            if call.state == "ringing":
                self.activate(call)

    def end(self, call: Call, by: str) -> None:
        call.state, call.ended_by, call.ended_at = "ended", by, self.now()
        if by == "peer":
            self.spawn(self._close_later(call))
        else:
            call.close_socket()

    async def _close_later(self, call: Call) -> None:
        await self.sleep(self.ws_close_after_s)
        call.close_socket()

    async def _offer_webhook(self, call: Call) -> None:
        payload = {"type": "v1.call.offer", "event": {"callId": call.id, "from": call.peer}}
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                call.webhook_status = (await client.post(self.state.webhook_url, json=payload)).status_code
        except httpx.HTTPError as error:
            call.webhook_status = type(error).__name__

    # ---- product REST

    def product(self, handler, engine: bool = True):
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                body = None
            token_ok = request.headers.get("token") == self.token
            self.requests.append({"t": self.now(), "method": request.method, "path": request.url.path,
                                  "json": body, "token_ok": token_ok})
            try:
                if not token_ok:
                    raise FakeError(401, "unauthorized")
                if not isinstance(body, dict):
                    raise FakeError(400, "the body must be a JSON object")
                if engine and not self.enabled:
                    raise FakeError(409, NOT_ENABLED)
                data = handler(body)
            except FakeError as error:
                return JSONResponse({"code": error.code, "error": str(error), "success": False},
                                    status_code=error.code)
            return JSONResponse({"code": 200, "data": data, "success": True})
        return endpoint

    def get_config(self, _body: dict) -> dict:
        return {key: value for key, value in self.state.config.items() if key != "callProviderToken"}

    def put_config(self, body: dict) -> dict:
        changes = {key: value for key, value in body.items() if value is not None}  # null: unchanged
        if "callInboundMode" in changes:
            changes["callInboundMode"] = changes["callInboundMode"] or "webhook"  # empty defaults to webhook
            if changes["callInboundMode"] not in MODES:
                raise FakeError(400, "invalid call_inbound_mode: must be manual, bot, ivr, ai, webhook, or reject")
        self.state.config.update(changes)
        return {"ok": True}

    def disconnect(self, _body: dict) -> dict:
        if not self.state.connected:
            raise FakeError(500, "No session")
        for call in self.calls.values():
            if call.state != "ended":
                self.end(call, "session")
        self.state.connected = False
        return {"Details": "Disconnected"}

    def connect(self, body: dict) -> dict:
        subscribe = body.get("Subscribe") or ["All"]
        if not isinstance(subscribe, list) or not all(isinstance(item, str) for item in subscribe):
            raise FakeError(400, "Subscribe must be a list of event names")
        if self.state.connected:
            raise FakeError(500, "Already Connected")
        known = self.state.known_events
        kept = [event for event in subscribe if known is None or event == "All" or event in known]
        self.state.subscribe, self.state.connected = list(dict.fromkeys(kept)), True
        self.active = dict(self.state.config)
        return {"webhook": self.state.webhook_url, "events": ",".join(self.state.subscribe), "details": "Connected!"}

    def session_status(self, _body: dict) -> dict:
        return {"Connected": self.state.connected, "LoggedIn": self.state.connected,
                "events": ",".join(self.state.subscribe), "webhook": self.state.webhook_url}

    def get_webhook(self, _body: dict) -> dict:
        return {"webhook": self.state.webhook_url, "subscribe": list(self.state.subscribe)}

    def skip_calls_config(self, _body: dict) -> dict:
        """The shape is a guess (the guide is silent): {"enabled"}, plus "global" when the server forces it."""
        if self.state.global_skip_calls:
            return {"enabled": True, "global": True}
        return {"enabled": self.state.skip_calls}

    def call_status(self, _body: dict) -> dict:
        return {"calls": [call.status_entry() for call in self.calls.values() if call.state != "ended"]}

    def dial(self, body: dict) -> dict:
        phone = digits(body.get("phone"))
        if phone in self.state.unreachable:
            raise FakeError(502, "peer unreachable")
        call = self.new_call(phone, "outbound", -60.0)
        self.spawn(self._outbound(call))
        return {"callId": call.id}

    def answer(self, body: dict) -> dict:
        call = self.live(body.get("callId"))
        if call.direction != "inbound" or call.state != "ringing":
            raise FakeError(409, "call is not a ringing inbound call")
        self.activate(call)
        return {"ok": True}

    def hangup(self, body: dict) -> dict:
        call_id = body.get("callId")
        if isinstance(call_id, str) and call_id in self.calls:
            self.calls[call_id].hangup_requests += 1
        self.end(self.live(call_id), "app")
        return {"ok": True}

    async def stream(self, ws: WebSocket) -> None:
        call = self.calls.get(ws.path_params["call_id"])
        refusal = None
        if ws.query_params.get("token") != self.token:
            refusal = (401, "unauthorized")
        elif call is None or call.state == "ended":
            refusal = (404, "call not found")
        elif call.outbox is not None:
            call.ws_refused += 1
            refusal = (409, "a media socket is already open on this call")
        if refusal:
            code, message = refusal
            await ws.send_denial_response(JSONResponse({"code": code, "error": message, "success": False},
                                                       status_code=code))
            return
        await ws.accept()
        call.ws_connections += 1
        call.ws_closed_by = None
        outbox = call.outbox = asyncio.Queue()
        sender = asyncio.get_running_loop().create_task(self._send(ws, outbox))
        try:
            while (message := await ws.receive())["type"] != "websocket.disconnect":
                if message.get("bytes") is not None:
                    call.client_audio(message["bytes"], self.now())
                else:
                    call.client_text_messages += 1
        finally:
            call.ws_closed_by = call.ws_closed_by or "client"
            call.outbox = None
            sender.cancel()

    @staticmethod
    async def _send(ws: WebSocket, outbox: asyncio.Queue) -> None:
        with contextlib.suppress(Exception):  # the client went away: its receive loop sees the disconnect
            while (frame := await outbox.get()) is not None:
                await ws.send_bytes(frame)
            await ws.close()

    async def events(self, request: Request) -> Response:
        """GET /call/{callId}/events as `call_events` says: "sse" streams `event: phase` / `data: {"callId",
        "phase"}` at each change (checked every frame) until the call ends; "none" is an older build (404);
        "json" answers once in JSON, not as a stream."""
        self.requests.append({"t": self.now(), "method": "GET", "path": request.url.path, "json": None,
                              "token_ok": request.headers.get("token") == self.token})
        call = self.calls.get(request.path_params["call_id"])
        if request.headers.get("token") != self.token:
            return JSONResponse({"code": 401, "error": "unauthorized", "success": False}, status_code=401)
        if self.call_events == "none" or call is None:
            return JSONResponse({"code": 404, "error": "not found", "success": False}, status_code=404)
        if self.call_events == "json":
            return JSONResponse({"code": 200, "data": {"phase": call.state}, "success": True})

        async def phases():
            sent = None
            while True:
                if call.state != sent:
                    sent = call.state
                    yield f"event: phase\ndata: {json.dumps({'callId': call.id, 'phase': sent})}\n\n"
                if sent == "ended":
                    return
                await self.sleep(FRAME_CALL_S)
        return StreamingResponse(phases(), media_type="text/event-stream")

    # ---- harness

    @staticmethod
    def harness(handler):
        async def endpoint(request: Request) -> Response:
            try:
                result = await handler(request)
            except FakeError as error:
                return JSONResponse({"error": str(error)}, status_code=error.code)
            return result if isinstance(result, Response) else JSONResponse(result)
        return endpoint

    def any_call(self, request: Request) -> Call:
        call = self.calls.get(request.path_params["call_id"])
        if call is None:
            raise FakeError(404, "no such call")
        return call

    @staticmethod
    async def json_body(request: Request) -> dict:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise FakeError(400, "the body must be a JSON object")
        return body

    async def fake_inbound(self, request: Request) -> dict:
        body = await self.json_body(request)
        noise_dbfs, ring_timeout_s = body.get("noise_dbfs", -60.0), body.get("ring_timeout_s", 30.0)
        if not isinstance(ring_timeout_s, (int, float)) or not isinstance(noise_dbfs, (int, float, type(None))):
            raise FakeError(400, "noise_dbfs must be a number or null, ring_timeout_s a number")
        if not self.enabled:
            raise FakeError(409, NOT_ENABLED)
        call = self.new_call(digits(body.get("from")), "inbound", noise_dbfs)
        if self.state.skip_calls or self.state.global_skip_calls or RINGS.isdisjoint(self.state.subscribe):
            self.end(call, "skipped")  # never listed: the silent loss a user cannot see
            return {"callId": call.id, "skipped": True}
        self.ring(call, ring_timeout_s)
        if self.state.webhook_url:
            self.spawn(self._offer_webhook(call))
        return {"callId": call.id}

    async def fake_webhook(self, request: Request) -> dict:
        url = (await self.json_body(request)).get("url")
        if not isinstance(url, str):
            raise FakeError(400, "url must be a string ('' turns the webhook off)")
        self.state.webhook_url = url
        return {"ok": True}

    async def fake_unreachable(self, request: Request) -> dict:
        phones = (await self.json_body(request)).get("phones")
        if not isinstance(phones, list):
            raise FakeError(400, "phones must be a list")
        self.state.unreachable = {digits(phone) for phone in phones}
        return {"ok": True}

    async def fake_say(self, request: Request) -> dict:
        call = self.any_call(request)
        pcm = await request.body()
        if not pcm or len(pcm) % 2:
            raise FakeError(400, "the body must be s16le samples")
        if call.state == "ended":
            raise FakeError(409, "call ended")
        return call.say(pcm)

    async def fake_hangup(self, request: Request) -> dict:
        call = self.any_call(request)
        if call.state == "ended":
            raise FakeError(409, "call ended")
        self.end(call, "peer")
        return {"ok": True}

    async def fake_report(self, request: Request) -> dict:
        return self.any_call(request).report()

    async def fake_heard(self, request: Request) -> Response:
        return Response(self.any_call(request).heard_wav(), media_type="audio/wav")

    async def fake_calls(self, _request: Request) -> list:
        return list(self.calls)

    async def fake_requests(self, _request: Request) -> list:
        return self.requests

    def routes(self) -> list:
        p, h = self.product, self.harness
        return [
            Route("/call/config", p(self.get_config, engine=False), methods=["GET"]),
            Route("/call/config", p(self.put_config, engine=False), methods=["PUT"]),
            Route("/session/disconnect", p(self.disconnect, engine=False), methods=["POST"]),
            Route("/session/connect", p(self.connect, engine=False), methods=["POST"]),
            Route("/session/status", p(self.session_status, engine=False), methods=["GET"]),
            Route("/webhook", p(self.get_webhook, engine=False), methods=["GET"]),
            Route("/session/skipcalls/config", p(self.skip_calls_config, engine=False), methods=["GET"]),
            Route("/call/status", p(self.call_status), methods=["GET"]),
            Route("/call/dial", p(self.dial), methods=["POST"]),
            Route("/call/answer", p(self.answer), methods=["POST"]),
            Route("/call/hangup", p(self.hangup), methods=["POST"]),
            WebSocketRoute("/call/{call_id}/stream", self.stream),
            Route("/call/{call_id}/events", self.events, methods=["GET"]),
            Route("/_fake/inbound", h(self.fake_inbound), methods=["POST"]),
            Route("/_fake/webhook", h(self.fake_webhook), methods=["PUT"]),
            Route("/_fake/unreachable", h(self.fake_unreachable), methods=["PUT"]),
            Route("/_fake/calls", h(self.fake_calls), methods=["GET"]),
            Route("/_fake/calls/{call_id}", h(self.fake_report), methods=["GET"]),
            Route("/_fake/calls/{call_id}/heard.wav", h(self.fake_heard), methods=["GET"]),
            Route("/_fake/calls/{call_id}/say", h(self.fake_say), methods=["POST"]),
            Route("/_fake/calls/{call_id}/hangup", h(self.fake_hangup), methods=["POST"]),
            Route("/_fake/requests", h(self.fake_requests), methods=["GET"]),
        ]


def build_fake_zuckzapgo(token: str, frame_s: float = 0.06, state: FakeState | None = None, *,
                         enabled: bool = False, answer_after_s: float | None = 0.5,
                         ws_close_after_s: float = 3.0, clock: Clock | None = None,
                         call_events: str = "none") -> Starlette:
    """The fake engine as an ASGI app; `enabled` (ignored with a `state`) starts it connected in manual mode
    subscribed to Message and Call. `app.state.fake_state` is what a restart passes back in. `clock`:
    real time by default; a test's VirtualClock when it is served from that test's loop. `call_events`:
    "sse", "json" or "none" (FakeEngine.events)."""
    engine = FakeEngine(token, frame_s, state if state is not None else FakeState.fresh(enabled),
                        answer_after_s, ws_close_after_s, clock or MonotonicClock(), call_events)
    app = Starlette(routes=engine.routes(), lifespan=engine.lifespan)
    app.state.fake_state = engine.state
    return app
