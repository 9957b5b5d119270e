"""Word error rate between what was said and what STT heard, after one shared normalisation.

Whisper writes "Mr. John Dashwood said 10" where a transcript has "mister john dashwood said
ten"; counting those as errors would measure spelling, not hearing. Both sides are lower-cased,
stripped of punctuation (hyphens split words, apostrophes inside words stay), numbers are spelled
out in the language of the speech (num2words) and common title abbreviations expanded. The word
alignment itself is jiwer's.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import jiwer
from num2words import num2words

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_ABBREVIATIONS = {
    "en": {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint"},
    "pt": {"sr": "senhor", "sra": "senhora", "dr": "doutor", "dra": "doutora"},
}
_NUM2WORDS_LANGUAGE = {"pt": "pt_BR"}


def _spelled(number: str, language: str) -> str:
    digits = number.replace(",", "").replace(".", "") if re.fullmatch(r"\d{1,3}([.,]\d{3})+", number) else number
    try:
        value = float(digits.replace(",", ".")) if re.search(r"[.,]", digits) else int(digits)
        return num2words(value, lang=_NUM2WORDS_LANGUAGE.get(language, language))
    except (NotImplementedError, OverflowError, ValueError):
        return number


def normalize(text: str, language: str = "en") -> list[str]:
    """The words of `text` as they are compared: 'Mr. Smith, 10-ish!' -> ['mister', 'smith', 'ten', 'ish']."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NUMBER.sub(lambda found: f" {_spelled(found[0], language)} ", text)
    text = re.sub(r"[-‐‑–—/]", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)|[^\w\s']", " ", text.replace("’", "'"))
    expand = _ABBREVIATIONS.get(language, {})
    return [expand.get(word, word) for word in text.split()]


@dataclass(frozen=True)
class WordErrors:
    """Substitutions, deletions and insertions against `words` reference words."""

    substitutions: int
    deletions: int
    insertions: int
    words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Errors per reference word (0.04 is 4 %); an empty reference counts every inserted word."""
        return self.errors / self.words if self.words else float(self.errors)

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(self.substitutions + other.substitutions, self.deletions + other.deletions,
                          self.insertions + other.insertions, self.words + other.words)


NO_ERRORS = WordErrors(0, 0, 0, 0)


def word_errors(reference: str, hypothesis: str, language: str = "en") -> WordErrors:
    expected, heard = normalize(reference, language), normalize(hypothesis, language)
    if not expected:
        return WordErrors(0, 0, len(heard), 0)
    if not heard:
        return WordErrors(0, len(expected), 0, len(expected))
    found = jiwer.process_words(" ".join(expected), " ".join(heard))
    return WordErrors(found.substitutions, found.deletions, found.insertions, len(expected))
