"""Cuts a reply streaming from the LLM into sentences, so the first one can be spoken early.

Speech for a sentence can start as soon as its end is known; waiting for the whole reply
would add the LLM's full generation time to every answer. A sentence ends at . ! ? or …
followed by a space, or at a line break. Abbreviations (Sr., Dra., etc.) and numbers
(3.5, 1.000) do not end one. A clause that runs past `max_chars` is cut at its last
comma, so a long first sentence does not hold the first audio back.
"""

from __future__ import annotations

import re

_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n+")
_ABBREVIATIONS = {
    "sr", "sra", "srta", "dr", "dra", "prof", "profa", "av", "etc", "ex", "obs", "tel", "nº", "pág",
    "mr", "mrs", "ms", "st", "vs", "e.g", "i.e",
}
_CLAUSE = re.compile(r"[,;:]\s+")


class SentenceSplitter:
    def __init__(self, max_chars: int = 160):
        self.max_chars = max_chars
        self._buffer = ""

    def feed(self, piece: str) -> list[str]:
        """Add streamed text; return the sentences it completed."""
        self._buffer += piece
        sentences = []
        start = 0
        for match in _END.finditer(self._buffer):
            if match.group().strip() == "." and self._is_abbreviation(self._buffer[start:match.start()]):
                continue
            sentences.append(self._buffer[start:match.end()])
            start = match.end()
        self._buffer = self._buffer[start:]
        if len(self._buffer) > self.max_chars:
            cut = None
            for cut in _CLAUSE.finditer(self._buffer):  # noqa: B007 - the last clause end is the one wanted
                pass
            if cut is not None:
                sentences.append(self._buffer[:cut.end()])
                self._buffer = self._buffer[cut.end():]
        return [s.strip() for s in sentences if s.strip()]

    def flush(self) -> list[str]:
        """The text left when the reply ends."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    @staticmethod
    def _is_abbreviation(text: str) -> bool:
        words = text.split()
        return bool(words) and words[-1].lower().rstrip(".") in _ABBREVIATIONS


class WholeText(SentenceSplitter):
    """Keeps a fixed phrase in one piece (a greeting is synthesized, and cached, as a whole)."""

    def feed(self, piece: str) -> list[str]:
        self._buffer += piece
        return []
