"""Is the LLM there? Checked at start-up (a warning, never a refusal) and shown by /ready and /health.

Without it, a service with the LLM down starts, says ready, and the first sign is a caller
hearing the error reply. One `GET {llm.url}/models` (every OpenAI-compatible server has it)
with a short timeout tells: unreachable, refused (a key), the wrong path (Ollama's API is under
/v1, a 404 without it), or up, and whether the configured model is among those served. The LLM
may come up later, so /ready reports the last answer and asks again in the background once it
is older than `max_age_s`, never making the probe wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx
from zapvoice.providers.errors import redact

from zapvoice.settings import LLMSettings

log = logging.getLogger(__name__)

State = Literal["unchecked", "ok", "unreachable", "error"]


@dataclass(frozen=True)
class LlmStatus:
    state: State
    url: str  # credentials masked
    detail: str


class LlmProbe:
    def __init__(self, settings: LLMSettings, timeout_s: float = 3.0, max_age_s: float = 30.0,
                 client: httpx.AsyncClient | None = None):
        self.settings = settings
        self.max_age_s = max_age_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self.status = LlmStatus("unchecked", redact(settings.url), "not checked yet")
        self._checked_at: float | None = None
        self._refresh: asyncio.Task | None = None

    async def check(self) -> LlmStatus:
        self.status = await self._ask()
        self._checked_at = time.monotonic()
        return self.status

    async def check_and_warn(self) -> LlmStatus:
        """The start-up check: a warning when the LLM cannot answer, an info line when it can."""
        status = await self.check()
        if status.state in ("ok", "unchecked"):  # unchecked: a contract /llm URL, which cannot be asked
            log.info("LLM at %s: %s", status.url, status.detail)
        else:
            log.warning("LLM at %s: %s. Calls will hear agent.error_reply until it answers; /ready shows its "
                        "state", status.url, status.detail)
        return status

    def current(self) -> dict:
        """The last status, as JSON; starts a new check in the background when it is stale."""
        stale = self._checked_at is None or time.monotonic() - self._checked_at > self.max_age_s
        if stale and not self.settings.is_contract and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.get_running_loop().create_task(self.check())
        return asdict(self.status)

    async def aclose(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
        await self._client.aclose()

    async def _ask(self) -> LlmStatus:
        s = self.settings
        url = redact(s.url)
        if s.is_contract:
            return LlmStatus("unchecked", url, "a provider's /llm URL (HTTP contract): it answers only "
                             "conversations, so the first reply is its check")
        headers = {"Authorization": f"Bearer {s.api_key.get_secret_value()}"} if s.api_key else {}
        try:
            response = await self._client.get(s.url.rstrip("/") + "/models", headers=headers)
        except httpx.HTTPError as exc:
            reason = redact(str(exc)) or "no answer"
            return LlmStatus("unreachable", url, f"cannot reach it ({type(exc).__name__}: {reason})")
        if response.status_code == 404:
            return LlmStatus("error", url, f"GET /models answered 404: {_path_hint(s.url)}")
        if response.status_code in (401, 403):
            return LlmStatus("error", url, f"GET /models answered {response.status_code}: the LLM wants another "
                             "API key (llm.api_key, ZAPVOICE_LLM_API_KEY)")
        if not response.is_success:
            return LlmStatus("error", url, f"GET /models answered HTTP {response.status_code}")
        served = _model_ids(response)
        if served is None or _serves(served, s.model):
            return LlmStatus("ok", url, f"answers, model {s.model}")
        listed = ", ".join(sorted(served)[:10]) or "none"
        return LlmStatus("error", url, f"answers, but does not serve the model {s.model!r} (it has: {listed}); "
                         f"with Ollama: `ollama pull {s.model}`, or set --llm-model")


def _path_hint(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    if not path.endswith("/v1"):
        return (f"the OpenAI-compatible API is usually under /v1 (Ollama's is): try --llm-url "
                f"{redact(url.rstrip('/'))}/v1")
    return "is this an OpenAI-compatible API (Ollama, vLLM, llama.cpp server, OpenAI)?"


def _model_ids(response: httpx.Response) -> set[str] | None:
    """The ids of OpenAI's `{"data": [{"id"}]}`, None when the answer has no such list (then nothing is claimed)."""
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError):
        return None
    if not isinstance(data, list):
        return None
    return {item["id"] for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)}


def _serves(served: set[str], model: str) -> bool:
    """Ollama lists `llama3.2:latest` for the model users call `llama3.2`."""
    return model in served or f"{model}:latest" in served
