"""The agent's small HTTP service: a health check, Prometheus /metrics, and the route ZuckZapGo's webhook
posts call events to.

A webhook only makes the agent poll at once, so a ringing call is answered without waiting for
the next poll. Its payload shape is not documented, so the call id is not trusted: the poll
confirms the call. The route exists only with a secret, given in the URL (webhook URLs cannot
carry headers): http://HOST:PORT/zuckzapgo/webhook?secret=SECRET.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from zapvoice.agent.zuckzapgo.server import ZuckZapGoAgent
from zapvoice.providers.metrics import scrape

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 256 * 1024


def create_agent_app(agent: ZuckZapGoAgent, secret: str | None, metrics: str = "off",
                     token: str | None = None, llm_status: Callable[[], dict] | None = None) -> Starlette:
    """`metrics` and `token`: service.metrics and service.token, as the service's /metrics uses them.
    `llm_status`: what /health says of the LLM (providers.llm_check)."""
    async def health(_: Request) -> JSONResponse:
        answer = {"status": "ok", "calls": len(agent.calls),
                  "zuckzapgo": {None: "unknown", True: "reachable", False: "unreachable"}[agent.reachable]}
        if llm_status is not None:
            answer["llm"] = llm_status()
        return JSONResponse(answer)

    expected = secret.encode() if secret else b""  # without a secret there is no webhook route

    async def webhook(request: Request) -> JSONResponse:
        given = request.query_params.get("secret", "") or request.headers.get("x-zapvoice-secret", "")
        if not hmac.compare_digest(given.encode(), expected):
            return JSONResponse({"error": "wrong or missing secret"}, status_code=401)
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        try:
            payload = await request.json()
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's json can decode
            return JSONResponse({"error": "the body is not JSON (or is nested too deep)"}, status_code=400)
        kind = payload.get("type") if isinstance(payload, dict) else None
        if isinstance(kind, str) and "call" in kind.lower():
            log.info("webhook %s: polling the call status now", kind)
            agent.poll_soon()
        return JSONResponse({"ok": True})

    async def prometheus(request: Request) -> Response:
        status, body, content_type = scrape(metrics, token, request.headers.get("authorization"))
        return Response(body, status_code=status, media_type=content_type)

    routes = [Route("/health", health), Route("/metrics", prometheus)]
    if secret:
        routes.append(Route("/zuckzapgo/webhook", webhook, methods=["POST"]))
    return Starlette(routes=routes)
