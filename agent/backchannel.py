"""Backchannels: "uh-huh", "yeah", "aham", "tá" said while the bot talks, which must not cut its reply.

A caller who talks over the bot for turns.barge_in_min_ms contests the reply: output stays paused,
the reply stays alive, and the words decide. When the utterance's transcript (the speculative one
at its first pause, else the turn's) is made only of turns.backchannels phrases, the reply resumes
where it paused and the utterance is dropped; anything else is a barge-in. Speech longer than
turns.backchannel_max_ms is a barge-in at once, with no wait for the words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from zapvoice.agent.vad import TurnEnded

_NOT_WORD = re.compile(r"[^\w']+")  # punctuation and hyphens split words; letters (accents kept), digits stay
_RUN = re.compile(r"(\w)\1+")  # "hmmm", "uuum", "okaaay": drawn-out sounds are spelt with any number of letters


def normalise(text: str) -> tuple[str, ...]:
    """Words of `text`, lowercase, without punctuation ("Uh-huh." → ("uh", "huh")) and with repeated letters
    once ("Hmmm" → "hm", as "hmm" is); accents are kept, only put in one Unicode form so a composed and a
    decomposed "tá" are the same word."""
    cleaned = _NOT_WORD.sub(" ", unicodedata.normalize("NFC", text).lower().replace("_", " "))
    return tuple(_RUN.sub(r"\1", word.strip("'")) for word in cleaned.split() if word.strip("'"))


class Backchannels:
    """Which transcripts are only backchannel phrases (one or several: "yeah, yeah, got it")."""

    def __init__(self, phrases: Iterable[str]):
        self._phrases = {words for words in map(normalise, phrases) if words}
        self._longest = max((len(words) for words in self._phrases), default=0)

    @property
    def enabled(self) -> bool:
        return bool(self._phrases)

    def only_backchannels(self, text: str) -> bool:
        words = normalise(text)
        if not words or not self._phrases:
            return False
        # covered[i]: words[:i] is a sequence of phrases
        covered = [True] + [False] * len(words)
        for end in range(1, len(words) + 1):
            covered[end] = any(covered[end - size] and words[end - size:end] in self._phrases
                               for size in range(1, min(self._longest, end) + 1))
        return covered[-1]


@dataclass(eq=False)
class Contest:
    """The caller is talking over a reply that is paused but alive, until their words decide.

    `kept`: their words so far were backchannels and the reply plays again; speech that goes on
    contests it anew. `ended`: the VAD ended the turn before the words were known, at clock `ended_at`.
    """

    kept: bool = False
    text: str = ""
    ended: TurnEnded | None = None
    ended_at: float = 0.0
