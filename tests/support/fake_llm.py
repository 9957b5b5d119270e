"""A fake OpenAI-compatible chat API with the failure modes real upstreams have.

The `model` field of the request picks the behaviour, so one server covers every case:
  echo      reply "Você disse: <last user message>" wrapped in markdown and an emoji
  echo-en   the same in English: "You said: <last user message>" (for an English voice)
  think     a reasoning model's <think> block before the answer (streamed in pieces that cut the tags)
  slow      answers after `slow_s` seconds (timeouts)
  error     HTTP 500 with an OpenAI-style error body
  garbage   HTTP 200 with an HTML page
  garbled   a stream whose second event is not JSON (a whole reply: echo)
  empty     HTTP 200 with no choices (streamed: a chunk without choices, no content)
  delay-N   echo after N milliseconds (an upstream with a realistic answer time)
  pace-F-R  echo, the first word after F ms, then R words a second (a whole reply: when the last is due)
  story     six short sentences, 50 words a second (something long enough to interrupt)
  goodbye   a farewell, then a call of the end_call tool if the request offers tools
  dtmf      says it will dial, then calls the send_dtmf tool with digits "12#" if the request offers it
  notools   HTTP 400 if the request offers tools (as Ollama answers for models without them), else echo
  nostream  a whole completion even when asked to stream: a <think> block, the goodbye and its tool call
  stall     streams the first word, then nothing until the client leaves (a whole reply: echo)
  trickle-N-MS  N keep-alives MS ms apart, then echo: SSE comments (streamed) or spaces before the JSON
            (a stuck upstream or a proxy's keep-alives, which per-read timeouts never end)
  echo-auth HTTP 401 whose error message repeats the request's Authorization header
  nonstring HTTP 200 whose message content is a list, not text
  gzip-N    echo, after N MiB of spaces, gzip-compressed (N MiB in about N KiB: a decompression bomb)
  markdown-N  a reply of N KiB of markdown
  stars-N   a reply of N KiB of "*a " (emphasis markers that never close, on one line)
  per-request  the mode is the request's system prompt (one `zapvoice serve` facing every mode)
Streams are server-sent events in OpenAI's chunk format, one word (with its trailing space) per
chunk. Every request is recorded (headers and JSON) for the tests to inspect; a streamed one, once
over, also records `disconnected`: whether the client left before the end (trickle: streamed or not),
and sets the entry's `over` event then.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import math
import re
import threading

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# What GET /v1/models lists: the modes without parameters (the others, e.g. delay-N, answer but are not listed).
LISTED_MODELS = ("echo", "echo-en", "think", "slow", "error", "garbage", "garbled", "empty", "story", "goodbye",
                 "dtmf", "notools", "nostream", "stall", "echo-auth", "nonstring", "per-request")

THINK = "<think>The user greets me; answer briefly.</think>Olá! Tudo bem."
STORY = ("Claro, posso ajudar com isso. A clínica abre às oito da manhã. Atendemos de segunda a sábado. "
         "O estacionamento fica ao lado do prédio. Traga um documento com foto. Quer marcar um horário?")
GOODBYE = "Obrigado pela ligação, tchau!"
END_CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "end_call", "arguments": "{}"}}
DIAL = "Vou discar o ramal agora."
SEND_DTMF = {"index": 0, "id": "call_2", "type": "function",
             "function": {"name": "send_dtmf", "arguments": '{"digits": "12#"}'}}


def completion(content: object, tool_calls: list[dict]) -> dict:
    message = {"role": "assistant", "content": content} | ({"tool_calls": tool_calls} if tool_calls else {})
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}]}


def event(delta: dict, finish_reason: str | None = None) -> str:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


async def pause(request: Request, seconds: float) -> bool:
    """Wait; False as soon as the client has left (noticed even where the server does not cancel the stream)."""
    loop = asyncio.get_running_loop()  # its time: a virtual clock's when served on a test's loop
    deadline = loop.time() + seconds
    while not await request.is_disconnected():
        if (left := deadline - loop.time()) <= 0:
            return True
        await asyncio.sleep(min(left, 0.01))
    return False


async def sse(request: Request, entry: dict, events: list[str], first_s: float, gap_s: float):
    """The events, the first after `first_s` and the others `gap_s` apart, then [DONE]."""
    finished = False
    try:
        for n, chunk in enumerate(events):
            if not await pause(request, first_s if n == 0 else gap_s):
                return
            yield chunk
        finished = True
        yield "data: [DONE]\n\n"
    finally:  # also when Starlette cancels the stream because the client left
        entry["disconnected"] = not finished
        entry["over"].set()


def stream_events(model: str, text: str, tool_calls: list[dict]) -> list[str]:
    """The answer as OpenAI streams it: a word per chunk (think: 5 characters, cutting its tags), then the tool calls."""
    if model == "empty":
        return ['data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": []}\n\n']
    pieces = [text[i:i + 5] for i in range(0, len(text), 5)] if model == "think" else re.findall(r"\S+\s*", text)
    events = [event({"role": "assistant", "content": pieces[0]})] + [event({"content": p}) for p in pieces[1:]]
    if model == "garbled":
        events.insert(1, "data: <html><body>502 Bad Gateway</body></html>\n\n")
    for call in tool_calls:  # its name first, then its arguments
        events += [event({"tool_calls": [call | {"function": {"name": call["function"]["name"], "arguments": ""}}]}),
                   event({"tool_calls": [{"index": call["index"], "function": {"arguments": call["function"]["arguments"]}}]})]
    return events + [event({}, "tool_calls" if tool_calls else "stop")]


async def trickle(request: Request, entry: dict, pieces: list[str], keep_alive: str, count: int, gap_s: float):
    """`count` keep-alives `gap_s` apart, then the pieces; records whether the client left first."""
    finished = False
    try:
        for _ in range(count):
            yield keep_alive
            if not await pause(request, gap_s):
                return
        yield "".join(pieces)
        finished = True
    finally:
        entry["disconnected"] = not finished
        entry["over"].set()


@functools.lru_cache(maxsize=4)
def gzip_bomb(mib: int, content: str) -> bytes:
    """A completion after `mib` MiB of spaces (valid JSON), gzip-compressed."""
    return gzip.compress(b" " * (mib << 20) + json.dumps(completion(content, [])).encode(), compresslevel=9)


def markdown(kib: int) -> str:
    line = "- **Item** com [um link](https://example.com/a) e `código` 😊\n"
    return line * (kib * 1024 // len(line.encode()) + 1)


def build_fake_llm(slow_s: float = 3.0) -> Starlette:
    requests: list[dict] = []

    async def chat(request: Request):
        body = await request.json()
        entry = {"headers": dict(request.headers), "json": body, "over": threading.Event()}
        requests.append(entry)
        model, tools = body.get("model"), bool(body.get("tools"))
        if model == "per-request":
            model = body["messages"][0]["content"]
        if model.startswith("trickle-"):
            count, gap_ms = map(int, model.removeprefix("trickle-").split("-"))
            echo = f"Você disse: {body['messages'][-1]['content']}"
            if body.get("stream"):
                pieces, keep_alive, media = stream_events("echo", echo, []) + ["data: [DONE]\n\n"], ": keep-alive\n\n", \
                    "text/event-stream"
            else:
                pieces, keep_alive, media = [json.dumps(completion(echo, []))], " ", "application/json"
            return StreamingResponse(trickle(request, entry, pieces, keep_alive, count, gap_ms / 1000), media_type=media)
        if model == "echo-auth":
            said = f"invalid credentials: Authorization: {request.headers.get('authorization', '')}"
            return JSONResponse({"error": {"message": said, "type": "invalid_request_error"}}, status_code=401)
        if model == "nonstring":
            return JSONResponse(completion([{"type": "text", "text": "olá"}], []))
        if model.startswith("gzip-"):
            bomb = gzip_bomb(int(model.removeprefix("gzip-")), f"Você disse: {body['messages'][-1]['content']}")
            return Response(bomb, media_type="application/json", headers={"Content-Encoding": "gzip"})
        if model.startswith("markdown-"):
            return JSONResponse(completion(markdown(int(model.removeprefix("markdown-"))), []))
        if model.startswith("stars-"):
            return JSONResponse(completion("*a " * (int(model.removeprefix("stars-")) * 1024 // 3), []))
        if model.startswith("delay-"):
            await asyncio.sleep(int(model.removeprefix("delay-")) / 1000)
        if model == "slow":
            await asyncio.sleep(slow_s)
            return JSONResponse(completion("late", []))
        if model == "error":
            return JSONResponse({"error": {"message": "model 'x' not found, try pulling it first", "type": "api_error"}},
                                status_code=500)
        if model == "garbage":
            return HTMLResponse("<html><body>502 Bad Gateway</body></html>")
        if model == "notools" and tools:
            return JSONResponse({"error": {"message": "registry.ollama.ai/library/notools does not support tools"}},
                                status_code=400)
        if model == "nostream":
            return JSONResponse(completion(THINK.replace("Olá! Tudo bem.", GOODBYE), [END_CALL] if tools else []))
        said = "You said" if model == "echo-en" else "Você disse"
        echo = f"**{said}:** {body['messages'][-1]['content']} 😊"
        text = {"think": THINK, "story": STORY, "goodbye": GOODBYE, "dtmf": DIAL}.get(model, echo)
        calls = [END_CALL] if model == "goodbye" and tools else []
        if model == "dtmf" and "send_dtmf" in {tool["function"]["name"] for tool in body.get("tools", [])}:
            calls = [SEND_DTMF]
        first_s, gap_s = 0.0, 1 / 50 if model == "story" else 0.0
        if model.startswith("pace-"):
            first_ms, rate = map(int, model.removeprefix("pace-").split("-"))
            first_s, gap_s = first_ms / 1000, 1 / rate
        if body.get("stream"):
            events = stream_events(model, text, calls)
            if model == "stall":
                gap_s = math.inf
            return StreamingResponse(sse(request, entry, events, first_s, gap_s), media_type="text/event-stream")
        if model == "empty":
            return JSONResponse({"choices": []})
        await asyncio.sleep(first_s + gap_s * (len(text.split()) - 1))
        return JSONResponse(completion(text, calls))

    async def models(_: Request) -> JSONResponse:
        """OpenAI's model list, which zapvoice's start-up check reads: the behaviours named by a fixed model."""
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model"} for name in LISTED_MODELS]})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])
    app.state.requests = requests
    return app
