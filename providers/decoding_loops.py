"""Finds where greedy Whisper decoding started repeating itself, and cuts the text there.

Greedy decoding with no temperature fallback (our default: it is the fast path) can fall into a
loop: "10 of clubs 10 of clubs 10 of clubs ..." or one syllable 75 times, until the token cap.
A caller must never get an answer to that. Two signs together make a loop: the text is longer
than the audio could hold (or compresses like a repetition, Whisper's own 2.4 ratio test), and
a run of words comes back. Either alone is ordinary speech ("five five five", a fast talker),
so the guard stays silent on it. The cut keeps everything before the first return: what the
caller said once, which is what the loops measured on real speech had got right.
"""

from __future__ import annotations

import re
import zlib

MAX_CHARS_PER_S = 25.0  # fast conversational speech is 15-18 characters a second
MAX_COMPRESSION_RATIO = 2.4  # Whisper's threshold for a repetitive decode
_WORDS_IN_A_RUN = 3  # a repeated run this long marks where a loop starts
_CHARS_IN_A_RUN = 4  # the same in scripts written without spaces (Thai, Japanese, ...)


def compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _tokens(text: str) -> tuple[list[tuple[int, str]], int]:
    """(start offset, folded token) pairs, and the run length that marks a repetition in them."""
    words = [(found.start(), re.sub(r"\W", "", found[0]).lower()) for found in re.finditer(r"\S+", text)]
    if words and len(text) / len(words) <= 15:
        return [(start, word) for start, word in words if word], _WORDS_IN_A_RUN
    return [(i, char) for i, char in enumerate(text) if char.isalnum()], _CHARS_IN_A_RUN


def loop_start(text: str) -> int | None:
    """Offset in `text` where a run of tokens seen before comes back, or None if none does."""
    tokens, run = _tokens(text)
    seen: set[tuple[str, ...]] = set()
    for i in range(len(tokens) - run + 1):
        gram = tuple(token for _, token in tokens[i:i + run])
        if gram in seen:
            return tokens[i][0]
        seen.add(gram)
    return None


def cut_loop(text: str, audio_s: float) -> str | None:
    """`text` up to where decoding looped, or None when it did not loop."""
    too_long = len(text) > MAX_CHARS_PER_S * max(audio_s, 1.0)
    if not (too_long or compression_ratio(text) > MAX_COMPRESSION_RATIO):
        return None
    start = loop_start(text)
    if start is None:
        return None
    return text[:start].rstrip(" ,;:-")
