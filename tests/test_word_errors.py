"""The word error rate `zapvoice eval` and the real-model tier report, and the normalisation before it."""

import pytest

from zapvoice.word_errors import normalize, word_errors


@pytest.mark.parametrize("text, language, words", [
    ("And Mr. John Dashwood, ill-disposed!", "en", "and mister john dashwood ill disposed"),
    ("10 of clubs; 4 Queen", "en", "ten of clubs four queen"),
    ("It costs 1,500 and don't 'quote' me", "en", "it costs one thousand five hundred and don't quote me"),
    ("Tenho 21 anos, Sr. João.", "pt", "tenho vinte e um anos senhor joão"),
    ("  ", "en", ""),
])
def test_both_sides_are_normalised_alike(text, language, words):
    assert normalize(text, language) == words.split()


def test_errors_are_counted_against_the_reference_words():
    found = word_errors("eight of spades four of clubs", "8 spades, for of clubs please")
    assert (found.substitutions, found.deletions, found.insertions, found.words) == (1, 1, 1, 6)
    assert found.rate == pytest.approx(0.5)
    assert (found + word_errors("ten", "10")).words == 7


def test_empty_sides():
    assert word_errors("", "thank you").rate == 2.0  # every word heard in silence is an error
    assert word_errors("five five", "").rate == 1.0
    assert word_errors("", "").rate == 0.0
