"""Cutting a streamed reply into sentences (agent/sentences.py)."""

from __future__ import annotations

from zapvoice.agent.sentences import SentenceSplitter, WholeText


def stream(text: str, splitter: SentenceSplitter, piece: int = 3) -> list[str]:
    out = []
    for i in range(0, len(text), piece):
        out += splitter.feed(text[i:i + piece])
    return out + splitter.flush()


def test_sentences_come_out_as_soon_as_they_end():
    splitter = SentenceSplitter()
    assert splitter.feed("Olá! Tudo") == ["Olá!"]
    assert splitter.feed(" bem? Sim") == ["Tudo bem?"]
    assert splitter.flush() == ["Sim"]


def test_abbreviations_numbers_and_ellipses():
    text = "O Dr. Silva atende às 8.30 horas, custa R$ 1.000,00 e a Sra. Lima também… Ligue já! Ok."
    assert stream(text, SentenceSplitter()) == [
        "O Dr. Silva atende às 8.30 horas, custa R$ 1.000,00 e a Sra. Lima também…", "Ligue já!", "Ok."]


def test_line_breaks_end_sentences():
    assert stream("Horários\nSegunda a sexta\n\nSábado", SentenceSplitter()) == ["Horários", "Segunda a sexta", "Sábado"]


def test_a_long_clause_is_cut_at_its_last_comma():
    text = "Nós temos consultas de manhã, de tarde e também de noite, " * 4 + "todos os dias."
    parts = stream(text, SentenceSplitter(max_chars=100), piece=5)
    assert all(len(p) <= 100 + 5 for p in parts[:-1]) and len(parts) > 2
    assert " ".join(parts) == text.strip()


def test_whole_text_keeps_a_phrase_in_one_piece():
    assert stream("Olá! Como posso ajudar?", WholeText()) == ["Olá! Como posso ajudar?"]
