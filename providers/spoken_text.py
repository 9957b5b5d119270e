"""Turns an LLM's written answer into text a voice can say.

Chat models answer in markdown with emoji and links; Piper would read "asterisk asterisk" or
spell out a URL. Reasoning models (qwen3, deepseek-r1 on Ollama) also prepend a <think> block
that must never be spoken. Control characters go first: espeak refuses a NUL outright.
"""

from __future__ import annotations

import re

_LINE_SEPARATORS = re.compile("[\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")  # C0 and C1 but tab and newline; lone surrogates
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.DOTALL)
_IMAGE = re.compile(r"!\[([^\[\]\n]*)\]\([^()\n]*\)")
_LINK = re.compile(r"\[([^\[\]\n]+)\]\([^()\n]*\)")
_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_QUOTE = re.compile(r"^\s{0,3}>\s?", re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*(?:[-*+•]|\d+[.)])[ \t]+", re.MULTILINE)
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$", re.MULTILINE)
_TABLE_RULE = re.compile(r"^[ \t]*\|[ \t:|-]*\|?[ \t]*$", re.MULTILINE)
_TABLE_EDGES = re.compile(r"^[ \t]*\|[ \t]*|[ \t]*\|[ \t]*$", re.MULTILINE)
_TABLE_PIPES = re.compile(r"[ \t]*\|[ \t]*")
_EMPHASIS = re.compile("|".join(  # the text inside never crosses its own mark, so each search stops at the next one
    rf"{mark}(?=\S)((?:(?!{mark}).)+?)(?<=\S){mark}" for mark in (r"\*\*", "__", r"\*", "_", "~~", "`")))
_LEFTOVER_MARKS = re.compile(r"[*`#~^|<>\[\]{}\\]")
# Emoji and pictographs, dingbats, flags, variation selectors, zero-width joiners, keycaps.
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\U00002b00-\U00002bff"
    "\U0000fe00-\U0000fe0f\U0000200d\U000020e3\U0000e000-\U0000f8ff]"
)
_SPACES = re.compile(r"[^\S\n]+")


def strip_reasoning(text: str) -> str:
    return _THINK.sub("", text)


def to_spoken(text: str) -> str:
    """Control characters, markdown, emoji and URLs out; list items and lines become sentences.

    Every pattern runs in time linear in the text (no search scans past the next newline, mark or
    bracket; runs of spaces are one space first): a hostile reply must not stall the event loop.
    """
    text = _CONTROLS.sub("", _LINE_SEPARATORS.sub("\n", text))
    text = strip_reasoning(text)
    text = _CODE_BLOCK.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _RULE.sub("", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = _TABLE_EDGES.sub("", text)
    text = _TABLE_PIPES.sub(", ", text)
    for _ in range(2):  # nested emphasis such as ***bold italic***
        text = _EMPHASIS.sub(_inner, text)
    text = _EMOJI.sub("", text)
    text = _LEFTOVER_MARKS.sub("", text)
    lines = [line for line in (part.strip().strip(" ,") for part in text.split("\n")) if line]
    text = " ".join([*map(_end_sentence, lines[:-1]), *lines[-1:]])
    return _SPACES.sub(" ", text).strip()


def _inner(match: re.Match) -> str:
    return next(group for group in match.groups() if group is not None)


def _end_sentence(line: str) -> str:
    """A line break in a list is a pause: make it a sentence end unless it already is."""
    return line if line[-1] in ".!?…:;," else line + "."
