"""A fake OpenAI-compatible chat API with the failure modes real upstreams have.

The `model` field of the request picks the behaviour, so one server covers every case:
  echo     reply "Você disse: <last user message>" wrapped in markdown and an emoji
  think    a reasoning model's <think> block before the answer
  slow     answers after `slow_s` seconds (timeouts)
  error    HTTP 500 with an OpenAI-style error body
  garbage  HTTP 200 with an HTML page
  empty    HTTP 200 with no choices
  delay-N  echo after N milliseconds (an upstream with a realistic answer time)
Every request is recorded (headers and JSON) for the tests to inspect.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route


def completion(content: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


def build_fake_llm(slow_s: float = 3.0) -> Starlette:
    requests: list[dict] = []

    async def chat(request: Request):
        body = await request.json()
        requests.append({"headers": dict(request.headers), "json": body})
        model = body.get("model")
        last = body["messages"][-1]["content"]
        if model.startswith("delay-"):
            await asyncio.sleep(int(model.removeprefix("delay-")) / 1000)
        if model == "slow":
            await asyncio.sleep(slow_s)
            return JSONResponse(completion("late"))
        if model == "error":
            return JSONResponse({"error": {"message": "model 'x' not found, try pulling it first", "type": "api_error"}},
                                status_code=500)
        if model == "garbage":
            return HTMLResponse("<html><body>502 Bad Gateway</body></html>")
        if model == "empty":
            return JSONResponse({"choices": []})
        if model == "think":
            return JSONResponse(completion("<think>The user greets me; answer briefly.</think>Olá! Tudo bem."))
        return JSONResponse(completion(f"**Você disse:** {last} 😊"))

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.requests = requests
    return app
