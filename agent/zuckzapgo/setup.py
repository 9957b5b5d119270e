"""`zapvoice zuckzapgo setup`: put an instance's calls engine in manual mode (docs/zuckzapgo.md §3).

The engine reads its configuration when the session connects, so the new configuration needs
a reconnect, and inbound calls only ring for a session subscribed to call events. The guide
names one event, `Call`; ZuckZapGo's Postman collection and spec name `CallOffer`,
`CallAccept`, `CallTerminate`, `CallOfferNotice` and `CallRelayLatency` and no `Call`. Both
readings are subscribed (wuzapi discards the names it does not know), and the subscriptions
are read back after the reconnect to see which the instance kept. The session's other
subscriptions are kept. Settings that drop inbound calls before any event (skip calls, per
instance or server-wide) are reported. Every change is reported in plain words.
"""

from __future__ import annotations

import asyncio

from zapvoice.agent.zuckzapgo.protocol import CallsNotEnabled, ZuckZapGoAPI, ZuckZapGoError, ZuckZapGoUnreachable

WANTED = {"callsEnabled": True, "callInboundMode": "manual", "callRecord": False}
DEFAULT_SUBSCRIPTIONS = ["Message"]  # what the guide's example keeps when the instance does not say
CALL_EVENTS = ("Call", "CallOffer", "CallAccept", "CallTerminate", "CallOfferNotice", "CallRelayLatency")
RINGS = {"All", "Call", "CallOffer"}  # a subscription that lets an inbound offer ring


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
    # A session that already has an event that rings is left alone: the names the instance does not know
    # were dropped when it connected, and asking for them again would reconnect on every run.
    wanted = subscriptions if RINGS & set(subscriptions) else [
        *subscriptions, *(event for event in CALL_EVENTS if event not in subscriptions)]
    skipping = await skip_calls_problem(api)
    if wanted != subscriptions:
        report.append(f"event subscriptions: {', '.join(subscriptions) or 'none'} -> {', '.join(wanted)}")
    if not changes and wanted == subscriptions and await _engine_answers(api):
        return ["nothing to change: the calls engine is already on in manual mode and the session gets call events",
                *([f"PROBLEM: {skipping}"] if skipping else [])]
    # PUT /call/config always writes these three (absent means false/false/"webhook"); the rest stays.
    await api.set_config(**WANTED)
    try:
        await api.disconnect()
    except ZuckZapGoUnreachable:
        raise
    except ZuckZapGoError as exc:
        report.append(f"the session was not connected ({exc.message})")
    await asyncio.sleep(reconnect_pause_s)
    kept = await api.connect(wanted)
    report.append("session reconnected so the engine reads the new configuration")
    report.append(_kept(wanted, await api.subscriptions() or kept))
    if await _engine_answers(api):
        report.append("GET /call/status answers: the engine is ready for `zapvoice agent`")
    else:
        report.append("GET /call/status still answers 409: check the instance is logged in to WhatsApp")
    if skipping:
        report.append(f"PROBLEM: {skipping}")
    return report


def _kept(asked: list[str], now: list[str] | None) -> str:
    """What the instance kept of the subscriptions asked for, read back after the reconnect."""
    if now is None:
        return "the instance does not show its subscriptions, so which call events it kept is unknown"
    dropped = [event for event in asked if event not in now]
    kept = [event for event in CALL_EVENTS if event in now] or (["All"] if "All" in now else [])
    if RINGS.isdisjoint(now):
        return (f"PROBLEM: the instance kept none of the call events (subscriptions now: {', '.join(now) or 'none'}): "
                "inbound calls will not ring; check its version supports calls")
    note = f"; it does not know {', '.join(dropped)} (dropped)" if dropped else ""
    return f"subscriptions read back: call events {', '.join(kept)} kept{note}"


async def skip_calls_problem(api: ZuckZapGoAPI) -> str | None:
    """Why inbound calls would be dropped before they ring, or None: the instance's skip-calls setting
    (`GET /session/skipcalls/config`), or a server-wide one (GLOBAL_SKIP_CALLS) that the instance reports.
    Builds without the endpoint (404) have no such setting. The shape is not in the guide: docs/zuckzapgo.md §3."""
    try:
        data = await api.request("GET", "/session/skipcalls/config")
    except ZuckZapGoUnreachable:
        raise
    except ZuckZapGoError as exc:
        if "GLOBAL_SKIP_CALLS" in exc.message.upper():
            return (f"the ZuckZapGo server skips calls for every instance ({exc.message}): its operator must unset "
                    "GLOBAL_SKIP_CALLS; until then no call rings")
        return None
    if _flag(data, "global", "globalSkipCalls", "GLOBAL_SKIP_CALLS"):
        return ("the ZuckZapGo server skips calls for every instance (GLOBAL_SKIP_CALLS): its operator must unset "
                "it; until then no call rings")
    if _flag(data, "enabled", "skipCalls", "SkipCalls", "skip_calls"):
        return ("this instance skips calls (/session/skipcalls/config is enabled): inbound calls are dropped "
                "before they ring; turn it off there")
    return None


def _flag(data: dict, *names: str) -> bool:
    return any(data.get(name) is True for name in names)


async def _engine_answers(api: ZuckZapGoAPI) -> bool:
    try:
        await api.calls()
    except CallsNotEnabled:
        return False
    return True


def _show(value: object) -> str:
    return "unset" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
