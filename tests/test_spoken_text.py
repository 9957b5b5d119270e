"""LLM answers are cleaned into something a voice can say."""

import pytest
from zapvoice.providers.spoken_text import to_spoken


@pytest.mark.parametrize(("written", "spoken"), [
    ("**Claro!** Posso _ajudar_ com isso.", "Claro! Posso ajudar com isso."),
    ("Olá! 😊👍🏽 Tudo bem?", "Olá! Tudo bem?"),
    ("## Horários\n- Segunda: 9h\n- Terça: 10h", "Horários. Segunda: 9h. Terça: 10h"),
    ("1. First\n2. Second", "First. Second"),
    ("See [our site](https://example.com) or https://x.io/a?b=c now.", "See our site or now."),
    ("<think>\nThe user wants a greeting.\n</think>\n\nHello!", "Hello!"),
    ("<think>never closed, all reasoning", ""),
    ("Use `pip install` then:\n```bash\nrm -rf /\n```\nDone.", "Use pip install then: Done."),
    ("> quoted\n---\n***very*** important", "quoted. very important"),
    ("| Dia | Hora |\n|---|:---:|\n| Seg | 9h |", "Dia, Hora. Seg, 9h"),
    ("Plain sentence.", "Plain sentence."),
    ("Olá\u0000 mun\x07do\x7f\x9b!\ud800", "Olá mundo!"),  # controls would crash espeak (NUL) or be read out
    ("Linha um\r\nLinha dois\u2028três\x0bquatro", "Linha um. Linha dois. três. quatro"),
    ("", ""),
])
def test_to_spoken(written, spoken):
    assert to_spoken(written) == spoken


def test_keeps_portuguese_letters_and_numbers():
    assert to_spoken("Consulta às 14h30, R$ 150,00 — ação não é difícil") == \
        "Consulta às 14h30, R$ 150,00 — ação não é difícil"


@pytest.mark.parametrize(("unit", "spoken_unit"), [
    ("*a ", "a"), ("**a ", "a"), ("_a ", "_a"), ("~~a ", "a"), ("`a ", "a"),
    ("[", ""), ("![", "!"), ("[a](", "a("), ("\n ", ""), (" ", ""), ("\u00a0", ""), ("| ", ","),
], ids=repr)
def test_hostile_replies_are_cleaned_in_linear_time(unit, spoken_unit):
    """256 KiB of unclosed marks or brackets, or of whitespace. Each took 12-19 s at 48 KiB before
    the patterns were bounded by the next mark, bracket or newline (quadratic: about 6 minutes at
    this size); now each is milliseconds, so a quadratic pattern makes this test hang."""
    count = 256 * 1024 // len(unit)
    spoken = to_spoken(unit * count + "fim")
    words = spoken.split()
    assert words[-1].endswith("fim")
    assert set(words[:-1]) <= {spoken_unit} and len(words) - 1 in {0, count - 1, count}
