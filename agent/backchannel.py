"""Backchannels: "uh-huh", "yeah", "aham", "tá" said while the bot talks, which must not cut its reply.

A caller who talks over the bot for turns.barge_in_min_ms contests the reply: output stays paused,
the reply stays alive, and the words decide. When the utterance's transcript (the speculative one
at its first pause, else the turn's) is made only of turns.backchannels phrases, the reply resumes
where it paused and the utterance is dropped; anything else is a barge-in. Speech longer than
turns.backchannel_max_ms is a barge-in at once, with no wait for the words.

A transcript that repeats the bot's own last words (`repeats_the_bot`) is dropped the same way: it is
the bot's echo on a line the echo canceller took for a clean one (a caller who turns the speakerphone
on mid-call: measured, the bot then answered its own echo, "We are open.", reply after reply). The cost:
a caller who repeats what the bot has just said over it ("...on Monday" / "Monday?") is not answered
and the bot goes on.
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


OWN_WORDS_SHARE = 0.6  # Whisper mishears an echo's words ("We are up." for "We are open"): 2 of 3 are enough


def repeats_the_bot(text: str, said: str) -> bool:
    """Whether `text` (the caller's transcript) is mostly words of `said` (what the bot played just before and
    while the caller was heard). The bot pauses at the caller's onset, so its echo brings back a word or two."""
    words = normalise(text)
    own = set(normalise(said))
    return bool(words) and sum(word in own for word in words) >= OWN_WORDS_SHARE * len(words)


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
    echo: bool = False  # the words kept were the bot's own
    ended: TurnEnded | None = None
    ended_at: float = 0.0
