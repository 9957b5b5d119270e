"""The test's side of a call through the fake ZuckZapGo (tests/support/fake_zuckzapgo.py), and the agent
running against it in this process."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
from zapvoice.agent.zuckzapgo.protocol import ZuckZapGoAPI
from zapvoice.agent.zuckzapgo.server import ZuckZapGoAgent
from zapvoice.providers.contracts import Engines
from zapvoice.providers.llm import OpenAIChat

INSTANCE_TOKEN = "zzg-instance-secret-93c1"


class Harness:
    """The test's side of the fake engine: make calls ring, speak as the caller, read reports."""

    def __init__(self, url: str):
        self.http = httpx.AsyncClient(base_url=url, timeout=10)

    async def ring(self, phone: str = "5521988887777") -> str:
        return (await self.http.post("/_fake/inbound", json={"from": phone})).json()["callId"]

    async def greeted(self) -> str:
        """A new inbound call, once the agent has answered it and its greeting has been heard."""
        call_id = await self.ring()
        await self.reply_after(call_id, 0.0)
        return call_id

    async def say(self, call_id: str, audio: bytes) -> float:
        """The caller speaks; returns when their speech ends (call seconds since the answer)."""
        return (await self.http.post(f"/_fake/calls/{call_id}/say", content=audio)).json()["end_s"]

    async def report(self, call_id: str) -> dict:
        return (await self.http.get(f"/_fake/calls/{call_id}")).json()

    async def until(self, call_id: str, check, timeout_s: float = 30.0) -> dict:
        for _ in range(int(timeout_s / 0.05)):
            report = await self.report(call_id)
            if check(report):
                return report
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out; last report: {json.dumps(report)[:2000]}")

    async def reply_after(self, call_id: str, after_s: float, quiet_s: float = 0.5) -> dict:
        """Wait until the bot has spoken after `after_s` and gone quiet for `quiet_s`."""
        def replied(report):
            later = [seg for seg in report["heard_segments"] if seg[0] > after_s]
            return later and (report["ended_at"] is not None or _call_time(report) - later[-1][1] > quiet_s)
        return await self.until(call_id, replied)


def _call_time(report: dict) -> float:
    """Call seconds since the answer, as far as the heard track goes."""
    return report["heard_s"]


@contextlib.asynccontextmanager
async def running_agent(settings, engines, clock):
    stt, tts = engines
    backends = Engines(stt, OpenAIChat(settings.llm), tts)
    api = ZuckZapGoAPI(settings.zuckzapgo.url, INSTANCE_TOKEN)
    agent = ZuckZapGoAgent(settings, backends, api, clock)
    poller = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        poller.cancel()
        await agent.aclose()
        await asyncio.gather(poller, return_exceptions=True)
        await api.aclose()
        await backends.llm.aclose()
