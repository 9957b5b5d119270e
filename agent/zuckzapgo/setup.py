"""`zapvoice zuckzapgo setup`: put an instance's calls engine in manual mode (docs/zuckzapgo.md §3).

The engine reads its configuration when the session connects, so the new configuration needs
a reconnect, and inbound calls only ring for a session subscribed to the Call event. The
session's other subscriptions are kept. Every change is reported in plain words.
"""

from __future__ import annotations

import asyncio

from zapvoice.agent.zuckzapgo.protocol import CallsNotEnabled, ZuckZapGoAPI, ZuckZapGoError, ZuckZapGoUnreachable

WANTED = {"callsEnabled": True, "callInboundMode": "manual", "callRecord": False}
DEFAULT_SUBSCRIPTIONS = ["Message"]  # what the guide's example keeps when the instance does not say


async def enable_manual_mode(api: ZuckZapGoAPI, reconnect_pause_s: float = 1.0) -> list[str]:
    """Configure, resubscribe and reconnect as needed; the list of what was done."""
    report = []
    config = await api.config()
    changes = {key: value for key, value in WANTED.items() if config.get(key) != value}
    for key, value in changes.items():
        note = " (server-side recording and the media socket exclude each other)" if key == "callRecord" else ""
        report.append(f"{key}: {_show(config.get(key))} -> {_show(value)}{note}")
    subscriptions = await api.subscriptions()
    if subscriptions is None:
        assumed = ", ".join(DEFAULT_SUBSCRIPTIONS)
        report.append(f"the instance does not show its event subscriptions; assuming {assumed}")
        subscriptions = list(DEFAULT_SUBSCRIPTIONS)
    wanted = subscriptions if {"Call", "All"} & set(subscriptions) else [*subscriptions, "Call"]
    if wanted != subscriptions:
        report.append(f"event subscriptions: {', '.join(subscriptions) or 'none'} -> {', '.join(wanted)}")
    if not changes and wanted == subscriptions and await _engine_answers(api):
        return ["nothing to change: the calls engine is already on in manual mode and the session gets Call events"]
    # PUT /call/config always writes these three (absent means false/false/"webhook"); the rest stays.
    await api.set_config(**WANTED)
    try:
        await api.disconnect()
    except ZuckZapGoUnreachable:
        raise
    except ZuckZapGoError as exc:
        report.append(f"the session was not connected ({exc.message})")
    await asyncio.sleep(reconnect_pause_s)
    await api.connect(wanted)
    report.append("session reconnected so the engine reads the new configuration")
    if await _engine_answers(api):
        report.append("GET /call/status answers: the engine is ready for `zapvoice agent`")
    else:
        report.append("GET /call/status still answers 409: check the instance is logged in to WhatsApp")
    return report


async def _engine_answers(api: ZuckZapGoAPI) -> bool:
    try:
        await api.calls()
    except CallsNotEnabled:
        return False
    return True


def _show(value: object) -> str:
    return "unset" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
