"""Answers and places ZuckZapGo calls, each a ZuckZapGoCall (call.py) holding one Conversation.

ZuckZapGo tells about calls only through GET /call/status (and, optionally, a webhook that
merely hints a poll is due): a ringing inbound call is answered once, and a call that
vanishes from the list has been hung up by the far end, even while its media socket stays
open. When ZuckZapGo is down the poll backs off; calls in progress end on their own when
their socket drops, and the agent carries on.
"""

from __future__ import annotations

import asyncio
import logging

from zapvoice.agent.admission import CallSlots
from zapvoice.agent.clock import Clock, MonotonicClock
from zapvoice.agent.line import CallInfo
from zapvoice.agent.zuckzapgo.call import ZuckZapGoCall, hang_up_quietly
from zapvoice.agent.zuckzapgo.protocol import ZuckZapGoAPI, ZuckZapGoError
from zapvoice.providers.contracts import Engines

from zapvoice.settings import Settings

log = logging.getLogger(__name__)

RINGING = {"ringing", "connecting", "calling"}


class ZuckZapGoAgent:
    def __init__(self, settings: Settings, engines: Engines, api: ZuckZapGoAPI, clock: Clock | None = None,
                 slots: CallSlots | None = None):
        """`slots`: the process's agent.max_calls, shared with the playground on the agent's port."""
        self.settings = settings
        self.slots = slots or CallSlots(settings.agent.max_calls)
        self.engines = engines
        self.api = api
        self.clock = clock or MonotonicClock()
        self.calls: dict[str, ZuckZapGoCall] = {}
        self.reachable: bool | None = None
        self._taken: set[str] = set()  # inbound calls answered or declined: never twice
        self._poll_soon = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        """Poll /call/status until cancelled."""
        s = self.settings
        delay = s.zuckzapgo.poll_s
        while True:
            try:
                listed = await self.api.calls()
            except ZuckZapGoError as exc:
                if self.reachable is not False:
                    log.warning("ZuckZapGo does not answer GET /call/status (%s); retrying with back-off up to %g s",
                                exc.message, s.zuckzapgo.retry_max_s)
                self.reachable = False
                await self._pause(delay)
                delay = min(delay * 2, s.zuckzapgo.retry_max_s)
                continue
            if self.reachable is False:
                log.info("ZuckZapGo answers again")
            self.reachable = True
            delay = s.zuckzapgo.poll_s
            self._update(listed)
            await self._pause(s.zuckzapgo.poll_s)

    def poll_soon(self) -> None:
        """Poll now rather than at the next interval (a webhook announced a call)."""
        self._poll_soon.set()

    async def call(self, phone: str) -> str:
        """Dial `phone` and hold the conversation; the reason it ended. Raises ZuckZapGoError if dialing fails."""
        call_id = await self.api.dial(phone)
        log.info("calling %s: call %s", phone, call_id)
        call = self.calls[call_id] = self._call(call_id)
        self.poll_soon()
        try:
            with self.slots.held():
                return await call.converse(CallInfo(call_id, "zuckzapgo", "outbound", called=phone))
        finally:
            self.calls.pop(call_id, None)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- status polling ---------------------------------------------------------------------------

    def _update(self, listed: list[dict]) -> None:
        by_id = {entry["callId"]: entry for entry in listed}
        for call_id, entry in by_id.items():
            call = self.calls.get(call_id)
            if call is not None:
                call.listed, call.missed_polls = True, 0
                if entry.get("state") == "active":
                    call.answered.set()
            elif (entry.get("direction") == "inbound" and entry.get("state") in RINGING
                  and call_id not in self._taken):
                self._taken.add(call_id)
                self._spawn(self._inbound(call_id, str(entry.get("peer", ""))))
        for call in list(self.calls.values()):
            if call.call_id not in by_id:
                call.missed_polls += 1
                if not call.gone and (call.listed or call.missed_polls >= 2):  # a fresh dial may not be listed yet
                    log.info("call %s ended at the far end", call.call_id)
                    call.vanished()
        self._taken &= by_id.keys() | self.calls.keys()

    async def _pause(self, seconds: float) -> None:
        sleep = asyncio.ensure_future(self.clock.sleep(seconds))
        woken = asyncio.ensure_future(self._poll_soon.wait())
        await asyncio.wait({sleep, woken}, return_when=asyncio.FIRST_COMPLETED)
        sleep.cancel()
        woken.cancel()
        self._poll_soon.clear()

    # --- calls ---------------------------------------------------------------------------------------

    async def _inbound(self, call_id: str, peer: str) -> None:
        caller = peer.split("@")[0]
        if self.slots.full:
            log.warning("declining call %s from %s: %d calls in progress (agent.max_calls)",
                        call_id, caller, self.slots.taken)
            await hang_up_quietly(self.api, call_id)
            return
        call = self.calls[call_id] = self._call(call_id, listed=True)
        try:
            with self.slots.held():
                log.info("answering call %s from %s", call_id, caller)
                try:
                    await self.api.answer(call_id)
                except ZuckZapGoError as exc:
                    log.warning("cannot answer call %s: %s", call_id, exc.message)
                    return
                call.answered.set()
                await call.converse(CallInfo(call_id, "zuckzapgo", "inbound", caller=caller))
        finally:
            self.calls.pop(call_id, None)

    def _call(self, call_id: str, listed: bool = False) -> ZuckZapGoCall:
        return ZuckZapGoCall(call_id, self.settings, self.engines, self.api, self.clock, listed)

    def _spawn(self, work) -> asyncio.Task:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())
