"""Prometheus metrics: the registry, its instruments, and the middleware that times every request.

One registry for the process (`METRICS`): the service's requests, the engines' work and the calls
the agent or the gateway carry all land in it, and GET /metrics (service.metrics) serves it.
Labels stay bounded: routes are the route templates (or "unmatched"), call end reasons are cut
to their kind and capped (`reason_label`).
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from zapvoice.providers.bearer import presented_token, token_matches

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from zapvoice.agent.call_record import TurnTimes

# Latency buckets for requests and turn stages: a phone turn lives between 50 ms and a few seconds.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
_MAX_REASONS = 32  # distinct call-end reasons kept as labels; more are "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("zapvoice_http_requests", "HTTP requests answered, by route, method and status.",
                                ["route", "method", "status"], registry=registry)
        self.request_seconds = Histogram("zapvoice_http_request_duration_seconds",
                                         "Time from a request's arrival to the end of its answer.",
                                         ["route", "method", "status"], buckets=_SECONDS, registry=registry)
        self.stt_audio_seconds = Counter("zapvoice_stt_audio_seconds", "Seconds of audio transcribed.", ["route"],
                                         registry=registry)
        self.stt_processing_seconds = Histogram("zapvoice_stt_processing_seconds",
                                                "Decoding, speech check and Whisper time of one transcription.",
                                                ["route"], buckets=_SECONDS, registry=registry)
        self.tts_characters = Counter("zapvoice_tts_characters", "Characters of text synthesized or served "
                                      "from the cache.", ["route"], registry=registry)
        self.tts_cache = Counter("zapvoice_tts_cache_lookups", "Speech cache lookups by result (hit, miss).",
                                 ["result"], registry=registry)
        self.queue_depth = Gauge("zapvoice_engine_jobs_in_flight", "Jobs running or waiting in an engine's worker.",
                                 ["engine"], registry=registry)
        self.rejections = Counter("zapvoice_engine_busy_rejections", "Requests refused with 503 because an "
                                  "engine's queue was full.", ["engine"], registry=registry)
        self.active_calls = Gauge("zapvoice_active_calls", "Calls in progress, by transport.", ["transport"],
                                  registry=registry)
        self.turn_seconds = Histogram("zapvoice_turn_seconds", "Time from the end of the caller's speech to each "
                                      "milestone of the reply: transcript, first_token, first_audio.",
                                      ["stage"], buckets=_SECONDS, registry=registry)
        self.barge_ins = Counter("zapvoice_barge_ins", "Replies the caller talked over and cut short.",
                                 ["transport"], registry=registry)
        self.call_ends = Counter("zapvoice_call_ends", "Calls ended, by transport and reason.",
                                 ["transport", "reason"], registry=registry)
        self._reasons: set[str] = set()
        self._lock = threading.Lock()

    # --- what the agent calls (zapvoice.agent.call_record) -------------------------------------

    def call_started(self, transport: str) -> None:
        self.active_calls.labels(transport).inc()

    def call_ended(self, transport: str, reason: str) -> None:
        self.active_calls.labels(transport).dec()
        self.call_ends.labels(transport, self.reason_label(reason)).inc()

    def turn(self, times: TurnTimes) -> None:
        for stage, moment in (("transcript", times.stt_done), ("first_token", times.first_token),
                              ("first_audio", times.first_audio)):
            if moment is not None:
                self.turn_seconds.labels(stage).observe(max(0.0, moment - times.speech_end))

    def barge_in(self, transport: str) -> None:
        self.barge_ins.labels(transport).inc()

    def reason_label(self, reason: str) -> str:
        """'line lost: [Errno 104] ...' -> 'line lost', 'the caller pressed 5' -> 'the caller pressed N'; past
        _MAX_REASONS distinct kinds, 'other': a label value never carries an error text or grows without end."""
        kind = re.sub(r"\d+", "N", reason.split(":", 1)[0].strip().lower())[:48] or "unknown"
        with self._lock:
            if kind in self._reasons:
                return kind
            if len(self._reasons) < _MAX_REASONS:
                self._reasons.add(kind)
                return kind
        return "other"

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


METRICS = Metrics()


def scrape(mode: str, token: str | None, authorization: str | None) -> tuple[int, bytes, str]:
    """GET /metrics on a port that is not the service's (the agent's, the gateway's): status, body and
    content type under service.metrics. "token" asks for the bearer token when one is set, as the service does."""
    if mode == "off":
        return 404, b'{"error": "metrics are off (service.metrics)"}', "application/json"
    if mode == "token" and token is not None:
        if not token_matches(token, presented_token(authorization)):
            return 401, b'{"error": "missing or wrong bearer token"}', "application/json"
    body, content_type = METRICS.exposition()
    return 200, body, content_type


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP answer by route template, method and status, and records
    what the audio routes left in request.state (seconds transcribed, characters spoken, cache result)."""

    def __init__(self, app: ASGIApp, metrics: Metrics = METRICS):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler is answered 500 by the server

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        labels = (route, scope["method"], str(status))
        m = self.metrics
        m.requests.labels(*labels).inc()
        m.request_seconds.labels(*labels).observe(seconds)
        state = scope.get("state") or {}
        if "stt_audio_s" in state:
            m.stt_audio_seconds.labels(route).inc(state["stt_audio_s"])
            m.stt_processing_seconds.labels(route).observe(state["stt_processing_s"])
        if "tts_chars" in state:
            m.tts_characters.labels(route).inc(state["tts_chars"])
            m.tts_cache.labels("hit" if state["tts_cache_hit"] else "miss").inc()
