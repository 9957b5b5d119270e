"""A client of any OpenAI-compatible chat API (Ollama, vLLM, llama.cpp server, OpenAI).

One pooled httpx client per process. Upstream failures map to the statuses a gateway should
give: unreachable -> 502, too slow -> 504, an error answer -> 502 carrying its message.
"""

from __future__ import annotations

import logging

import httpx

from providers.contracts import Message
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
        self.client = client or httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(settings.llm_timeout_s, connect=min(5.0, settings.llm_timeout_s)),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=32),
        )

    def _payload(self, system: str, messages: list[Message]) -> dict:
        s = self.settings
        chat = ([{"role": "system", "content": system}] if system else []) + list(messages)
        return {"model": s.llm_model, "messages": chat, "temperature": s.llm_temperature,
                "max_tokens": s.llm_max_tokens, "stream": False}

    async def reply(self, system: str, messages: list[Message]) -> str:
        try:
            response = await self.client.post(self.url, json=self._payload(system, messages))
        except httpx.TimeoutException as exc:
            raise ProviderError(504, f"the LLM at {self.settings.llm_url} did not answer within "
                                     f"{self.settings.llm_timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(502, f"cannot reach the LLM at {self.settings.llm_url}: "
                                     f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise ProviderError(502, f"the LLM answered HTTP {response.status_code}: {upstream_error_text(response)}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError(502, "the LLM answered something that is not an OpenAI chat completion: "
                                     f"{response.text[:200]!r}") from exc
        if not isinstance(content, str):
            content = ""
        return to_spoken(content) if self.settings.llm_spoken_style else strip_reasoning(content).strip()

    async def aclose(self) -> None:
        await self.client.aclose()

