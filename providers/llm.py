"""A client of any OpenAI-compatible chat API (Ollama, vLLM, llama.cpp server, OpenAI).

One pooled httpx client per process. Upstream failures map to the statuses a gateway should
give: unreachable -> 502, too slow -> 504, an error answer -> 502 carrying its message.
Replies come whole (`reply`) or as the model generates them (`stream`, server-sent events).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from typing import AsyncIterator, Iterator, Sequence

import httpx

from providers.contracts import Message, ToolCall
from providers.errors import ProviderError, upstream_error_text
from providers.spoken_text import strip_reasoning, to_spoken
from zapvoice.settings import Settings

log = logging.getLogger(__name__)


class OpenAIChat:
    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None):
        self.settings = settings
        self.url = settings.llm_url.rstrip("/") + "/chat/completions"
        headers = {}
        if settings.llm_api_key:
            headers["Authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
        # The read timeout bounds the wait for the first byte and every stall of a stream alike.
        self.client = client or httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(settings.llm_timeout_s, connect=min(5.0, settings.llm_timeout_s)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=32),
        )
        self._tools_refused = False  # the upstream rejected a request offering tools: never offer them again

    def _payload(self, system: str, messages: list[Message], stream: bool = False, tools: Sequence[dict] = ()) -> dict:
        s = self.settings
        chat = ([{"role": "system", "content": system}] if system else []) + list(messages)
        payload = {"model": s.llm_model, "messages": chat, "temperature": s.llm_temperature,
                   "max_tokens": s.llm_max_tokens, "stream": stream}
        if tools:
            payload["tools"] = list(tools)
        return payload

    async def reply(self, system: str, messages: list[Message]) -> str:
        with self._upstream_errors():
            response = await self.client.post(self.url, json=self._payload(system, messages))
        self._raise_for_status(response)
        content = self._message(response)["content"]
        if not isinstance(content, str):
            content = ""
        return to_spoken(content) if self.settings.llm_spoken_style else strip_reasoning(content).strip()

    async def stream(self, system: str, messages: list[Message],
                     tools: Sequence[dict] = ()) -> AsyncIterator[str | ToolCall]:
        tools = () if self._tools_refused else tuple(tools)
        with self._upstream_errors():
            while True:  # at most twice: once more without tools if the upstream refuses them
                request = self._payload(system, messages, stream=True, tools=tools)
                async with self.client.stream("POST", self.url, json=request) as response:
                    if not response.is_success:
                        await response.aread()
                        if tools and response.status_code in (400, 422):
                            self._refuse_tools(response)
                            tools = ()
                            continue
                        self._raise_for_status(response)
                    reasoning, calls = _ReasoningFilter(), _ToolCalls()
                    async with contextlib.aclosing(self._deltas(response)) as deltas:
                        async for delta in deltas:
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

    async def _deltas(self, response: httpx.Response) -> AsyncIterator[dict]:
        """What each event of a streamed answer adds to the message (`content`, `tool_calls`)."""
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            await response.aread()  # the upstream ignored "stream": a whole completion, or garbage
            yield self._message(response)
            return
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank lines between events, comments, other fields
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise ProviderError(502, f"the LLM streamed an event that is not JSON: {data[:200]!r}") from exc
            try:
                delta = chunk["choices"][0]["delta"]
            except (KeyError, IndexError, TypeError):
                continue  # no choices: a usage or keep-alive chunk
            if isinstance(delta, dict):
                yield delta

    @contextlib.contextmanager
    def _upstream_errors(self) -> Iterator[None]:
        """httpx failures, while connecting or while reading, as the ProviderError a gateway gives."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ProviderError(504, f"the LLM at {self.settings.llm_url} did not answer within "
                                     f"{self.settings.llm_timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(502, f"cannot reach the LLM at {self.settings.llm_url}: "
                                     f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        if not response.is_success:
            raise ProviderError(502, f"the LLM answered HTTP {response.status_code}: {upstream_error_text(response)}")

    @staticmethod
    def _message(response: httpx.Response) -> dict:
        """The assistant message of a whole (not streamed) chat completion."""
        try:
            message = response.json()["choices"][0]["message"]
            return {"content": message["content"], "tool_calls": message.get("tool_calls")}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError(502, "the LLM answered something that is not an OpenAI chat completion: "
                                     f"{response.text[:200]!r}") from exc

    def _refuse_tools(self, response: httpx.Response) -> None:
        if not self._tools_refused:
            log.warning("the LLM at %s refuses tools (HTTP %s: %s); the model cannot hang up, "
                        "asking again without them", self.settings.llm_url, response.status_code,
                        upstream_error_text(response))
        self._tools_refused = True

    async def aclose(self) -> None:
        await self.client.aclose()


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
