"""The call records (agent.record_dir, agent/call_record.py) read back for /calls: a page of calls, newest
first, and one call whole.

Records are `<dir>/<YYYY-MM-DD>/<call id>.jsonl`. A page reads only its own files, so a long history
costs a directory listing, not a parse of every call. The day folders' names sort by time but call
ids do not, so a page stats (for the time each was last written) only the files of the days it spans.
A call without `call_ended` is in progress (or its process died); a line that is not JSON (cut by a
crash mid-write) is skipped.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")  # CallRecord's safe ids, never "." or ".."
RECORD = re.compile(rf"{NAME.pattern}\.jsonl")
MAX_PER_PAGE = 100


class NoSuchCall(LookupError):
    pass


def calls_by_day(directory: Path) -> list[tuple[Path, list[str]]]:
    """Each day folder with its record files' names, newest day first; within a day in no order (only listed)."""
    if not directory.is_dir():
        return []
    days = sorted((day for day in directory.iterdir() if DAY.fullmatch(day.name) and day.is_dir()),
                  key=lambda day: day.name, reverse=True)
    return [(day, [entry.name for entry in os.scandir(day) if RECORD.fullmatch(entry.name)]) for day in days]


def calls_page(directory: Path, page: int, per_page: int) -> dict:
    """One page (from 1) of call summaries, newest first (by day folder, then by when each was last written),
    with the totals a pager needs. ValueError for a page out of range."""
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"page must be 1 or more and per_page 1 to {MAX_PER_PAGE}")
    days = calls_by_day(directory)
    total = sum(len(names) for _, names in days)
    skip, chosen = (page - 1) * per_page, list[Path]()
    for day, names in days:
        if len(chosen) == per_page:
            break
        if skip >= len(names):  # a day before the page: counted, never stat'ed
            skip -= len(names)
            continue
        newest_first = sorted((day / name for name in names), key=lambda path: path.stat().st_mtime, reverse=True)
        chosen.extend(newest_first[skip:skip + per_page - len(chosen)])
        skip = 0
    return {"page": page, "per_page": per_page, "pages": max(1, -(-total // per_page)), "total": total,
            "calls": [summary(path, read_lines(path)) for path in chosen]}


def one_call(directory: Path, day: str, name: str) -> dict:
    """The summary, every turn and the end of one call; NoSuchCall if there is no such record."""
    if not DAY.fullmatch(day) or not NAME.fullmatch(name):
        raise NoSuchCall(f"{day}/{name} is not a call record id")
    path = directory / day / f"{name}.jsonl"
    if not path.is_file():
        raise NoSuchCall(f"no call record {day}/{name}")
    lines = read_lines(path)
    return {**summary(path, lines), "turns": [line for line in lines if line.get("event") == "turn"]}


def read_lines(path: Path) -> list[dict]:
    entries = []
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def summary(path: Path, lines: list[dict]) -> dict:
    started = next((line for line in lines if line.get("event") == "call_started"), {})
    ended = next((line for line in lines if line.get("event") == "call_ended"), None)
    return {
        "id": f"{path.parent.name}/{path.stem}",
        "call_id": started.get("call_id", path.stem),
        "started_at": started.get("at") or (lines[0].get("at") if lines else None),
        "transport": started.get("transport", ""),
        "direction": started.get("direction", ""),
        "caller": started.get("caller", ""),
        "called": started.get("called", ""),
        "turns": sum(line.get("event") == "turn" for line in lines),
        "duration_s": ended.get("duration_s") if ended else None,
        "ended": ended.get("reason") if ended else None,  # None: in progress, or the process died
    }
