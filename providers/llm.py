"""A client of any OpenAI-compatible chat API (Ollama, vLLM, llama.cpp server, OpenAI).

One pooled httpx client per process. Upstream failures map to the statuses a gateway should
give: unreachable -> 502, too slow (however it trickles) -> 504, an error answer -> 502 carrying its
message (credentials masked), an answer too big or not text -> 502.
Replies come whole (`reply`) or as the model generates them (`stream`, server-sent events).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterator, Sequence
from typing import TypeVar

import httpx
from zapvoice.providers.contracts import Message, ToolCall
from zapvoice.providers.errors import ProviderError, redact, upstream_error_text
from zapvoice.providers.spoken_text import strip_reasoning, to_spoken

from zapvoice.settings import LLMSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class OpenAIChat:
    def __init__(self, settings: LLMSettings, client: httpx.AsyncClient | None = None):
        self.settings = settings
        self.url = settings.url.rstrip("/") + "/chat/completions"
        headers = {}
        self._secrets: tuple[str, ...] = ()
        if settings.api_key:
            self._secrets = (settings.api_key.get_secret_value(),)
            headers["Authorization"] = f"Bearer {self._secrets[0]}"
        # httpx's timeouts bound each read; _Deadline bounds the whole exchange.
        self.client = client or httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s)),
            limits=httpx.Limits(max_connections=settings.max_connections,
                                max_keepalive_connections=min(32, settings.max_connections)),
        )
        self._tools_refused = False  # the upstream rejected a request offering tools: never offer them again

    def _payload(self, system: str, messages: list[Message], stream: bool = False, tools: Sequence[dict] = ()) -> dict:
        s = self.settings
        chat = ([{"role": "system", "content": system}] if system else []) + list(messages)
        payload = {"model": s.model, "messages": chat, "temperature": s.temperature,
                   "max_tokens": s.max_tokens, "stream": stream}
        if tools:
            payload["tools"] = list(tools)
        return payload

    async def reply(self, system: str, messages: list[Message]) -> str:
        content = await _Deadline(self.settings).wait(self._whole_reply(system, messages))
        return to_spoken(content) if self.settings.spoken_style else strip_reasoning(content).strip()

    async def _whole_reply(self, system: str, messages: list[Message]) -> str:
        with self._upstream_errors():
            async with self.client.stream("POST", self.url, json=self._payload(system, messages)) as response:
                body = await self._body(response)
        self._raise_for_status(response, body)
        content = self._message(body)["content"]
        if not isinstance(content, str):
            raise ProviderError(502, f"the LLM answered a message whose content is not text: {type(content).__name__}")
        return content

    async def stream(self, system: str, messages: list[Message],
                     tools: Sequence[dict] = ()) -> AsyncGenerator[str | ToolCall, None]:
        tools = () if self._tools_refused else tuple(tools)
        deadline = _Deadline(self.settings, first_token=True)
        with self._upstream_errors():
            while True:  # at most twice: once more without tools if the upstream refuses them
                request = self._payload(system, messages, stream=True, tools=tools)
                async with contextlib.AsyncExitStack() as exchange:
                    response = await deadline.wait(
                        exchange.enter_async_context(self.client.stream("POST", self.url, json=request)))
                    if not response.is_success:
                        body = await deadline.wait(self._body(response))
                        if tools and response.status_code in (400, 422):
                            self._refuse_tools(response, body)
                            tools = ()
                            continue
                        self._raise_for_status(response, body)
                    reasoning, calls = _ReasoningFilter(), _ToolCalls()
                    deltas = await exchange.enter_async_context(contextlib.aclosing(self._deltas(response)))
                    while (delta := await deadline.wait(anext(deltas, None))) is not None:
                        if delta.get("content") or delta.get("tool_calls"):
                            deadline.first_token_came()
                        calls.add(delta.get("tool_calls"))
                        content = delta.get("content")
                        if isinstance(content, str) and (text := reasoning.feed(content)):
                            yield text
                    if text := reasoning.end():
                        yield text
                    if tools:
                        offered = {tool["function"]["name"] for tool in tools}
                        for call in calls.complete():
                            if call.name in offered:
                                yield call
                    return

    async def _deltas(self, response: httpx.Response) -> AsyncGenerator[dict, None]:
        """What each event of a streamed answer adds to the message (`content`, `tool_calls`)."""
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            # The upstream ignored "stream": a whole completion, or garbage.
            yield self._message(await self._body(response))
            return
        async for line in self._lines(response):
            if not line.startswith("data:"):
                continue  # blank lines between events, comments, other fields
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except (ValueError, RecursionError) as exc:
                raise ProviderError(502, "the LLM streamed an event that is not JSON: "
                                         f"{redact(data, self._secrets)[:200]!r}") from exc
            try:
                delta = chunk["choices"][0]["delta"]
            except (KeyError, IndexError, TypeError):
                continue  # no choices: a usage or keep-alive chunk
            if isinstance(delta, dict):
                yield delta

    async def _body(self, response: httpx.Response) -> bytes:
        """The whole answer, decompressed, read in pieces up to llm.max_reply_bytes (a gzip bomb stops there)."""
        body = bytearray()
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > self.settings.max_reply_bytes:
                raise self._too_big()
        return bytes(body)

    async def _lines(self, response: httpx.Response) -> AsyncIterator[str]:
        """The lines of a streamed answer, each at most llm.max_reply_bytes: httpx's aiter_lines would hold a line
        that never ends (a decompression bomb) whole."""
        pending = b""
        async for piece in response.aiter_bytes():
            *lines, pending = (pending + piece).split(b"\n")
            if max(len(pending), *map(len, lines)) > self.settings.max_reply_bytes:
                raise self._too_big()
            for line in lines:
                yield line.decode("utf-8", "replace").removesuffix("\r")
        if pending:
            yield pending.decode("utf-8", "replace")

    def _too_big(self) -> ProviderError:
        return ProviderError(502, f"the LLM answered more than {self.settings.max_reply_bytes} bytes "
                                  "(llm.max_reply_bytes)")

    @contextlib.contextmanager
    def _upstream_errors(self) -> Iterator[None]:
        """httpx failures, while connecting or while reading, as the ProviderError a gateway gives."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ProviderError(504, f"the LLM at {redact(self.settings.url)} did not answer within "
                                     f"{self.settings.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(502, f"cannot reach the LLM at {redact(self.settings.url)}: "
                                     f"{type(exc).__name__}: {redact(str(exc), self._secrets)}") from exc

    @staticmethod
    def _raise_for_status(response: httpx.Response, body: bytes) -> None:
        if not response.is_success:
            raise ProviderError(502, f"the LLM answered HTTP {response.status_code}: "
                                     f"{upstream_error_text(response, body)}")

    def _message(self, body: bytes) -> dict:
        """The assistant message of a whole (not streamed) chat completion."""
        try:
            message = json.loads(body)["choices"][0]["message"]
            return {"content": message["content"], "tool_calls": message.get("tool_calls")}
        except (ValueError, RecursionError, KeyError, IndexError, TypeError) as exc:
            text = redact(body.decode("utf-8", "replace"), self._secrets)
            raise ProviderError(502, f"the LLM answered something that is not an OpenAI chat completion: "
                                     f"{text[:200]!r}") from exc

    def _refuse_tools(self, response: httpx.Response, body: bytes) -> None:
        if not self._tools_refused:
            log.warning("the LLM at %s refuses tools (HTTP %s: %s); the model cannot hang up, "
                        "asking again without them", redact(self.settings.url), response.status_code,
                        upstream_error_text(response, body))
        self._tools_refused = True

    async def aclose(self) -> None:
        await self.client.aclose()


class _Deadline:
    """When one exchange with the upstream must be over: httpx's timeouts bound each read, so an upstream that
    trickles keep-alives (a stuck Ollama, a proxy) would otherwise never time out. A stream must also bring its
    first token within llm.first_token_timeout_s: a caller is waiting in silence."""

    def __init__(self, settings: LLMSettings, first_token: bool = False):
        self.settings = settings
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._total_by = now + settings.timeout_s
        self._first_token_by = now + settings.first_token_timeout_s if first_token else math.inf

    def first_token_came(self) -> None:
        self._first_token_by = math.inf

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """`awaitable`, cancelled with a 504 if the time runs out first."""
        waiting_first = self._first_token_by < self._total_by
        try:
            return await asyncio.wait_for(awaitable, min(self._total_by, self._first_token_by) - self._loop.time())
        except TimeoutError:
            url = redact(self.settings.url)
            if waiting_first:
                raise ProviderError(504, f"the LLM at {url} sent no token within "
                                         f"{self.settings.first_token_timeout_s:g} s") from None
            raise ProviderError(504, f"the LLM at {url} did not answer within "
                                     f"{self.settings.timeout_s:g} s") from None


class _ToolCalls:
    """Tool calls assembled from streamed pieces: the name comes first, the JSON arguments in parts,
    each piece tagged with its call's index (a whole completion gives each call in one piece)."""

    def __init__(self) -> None:
        self.parts: dict[int, dict[str, str]] = {}

    def add(self, pieces: object) -> None:
        if not isinstance(pieces, list):
            return
        for position, piece in enumerate(pieces):
            function = piece.get("function") if isinstance(piece, dict) else None
            if not isinstance(function, dict):
                continue
            index = piece.get("index", position)
            call = self.parts.setdefault(index if isinstance(index, int) else position, {"name": "", "arguments": ""})
            if isinstance(function.get("name"), str):
                call["name"] += function["name"]
            if isinstance(function.get("arguments"), str):
                call["arguments"] += function["arguments"]

    def complete(self) -> list[ToolCall]:
        calls = []
        for _, call in sorted(self.parts.items()):
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except ValueError:
                arguments = {}
            calls.append(ToolCall(call["name"], arguments if isinstance(arguments, dict) else {}))
        return calls


_OPEN, _CLOSE = re.compile("<think>", re.IGNORECASE), re.compile("</think>", re.IGNORECASE)


class _ReasoningFilter:
    """Drops <think>…</think> blocks from text arriving in pieces, tags cut across pieces included."""

    def __init__(self) -> None:
        self.held = ""  # the end of the text so far when it may be the beginning of a tag
        self.thinking = False
        self.after_block = False  # the whitespace between a block and the answer is dropped

    def feed(self, piece: str) -> str:
        text, kept = self.held + piece, []
        while found := (_CLOSE if self.thinking else _OPEN).search(text):
            if not self.thinking:
                kept.append(self._keep(text[:found.start()]))
            self.after_block = self.thinking
            self.thinking = not self.thinking
            text = text[found.end():]
        cut = text.rfind("<")
        if cut < 0 or not ("</think>" if self.thinking else "<think>").startswith(text[cut:].lower()):
            cut = len(text)
        text, self.held = text[:cut], text[cut:]
        if not self.thinking:
            kept.append(self._keep(text))
        return "".join(kept)

    def end(self) -> str:
        """What was held back, once the text is complete (an unclosed block is dropped, as strip_reasoning does)."""
        return "" if self.thinking else self._keep(self.held)

    def _keep(self, text: str) -> str:
        if self.after_block:
            text = text.lstrip()
            self.after_block = not text
        return text
