"""The README's test commands are what CI runs (.ci/run), and they work on a stock Debian or Ubuntu."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"-q", "-qq", "--no-install-recommends"}  # CI's quieter spelling of the same commands


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, re.DOTALL)


def commands(script: str) -> list[list[str]]:
    """Each simple command of `script` as words (split at newlines, &&, ||, ;), comments, redirections and
    quiet flags dropped; a quoted argument may span lines."""
    lexer = shlex.shlex(script.replace("\\\n", " "), posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t"
    lexer.whitespace_split = True
    found, words, redirected = [], [], False
    for token in [*lexer, "\n"]:
        if set(token) <= set("\n;&|()"):
            if words:
                found.append(words)
            words = []
        elif set(token) <= set("<>"):
            redirected = True
        elif redirected:
            redirected = False  # the redirection's target
        elif token not in QUIET:
            words.append(token)
    return found


def readme_test_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("Run the tests"):]
    return commands(bash_blocks(section)[0])


def ci_commands() -> list[list[str]]:
    """.ci/run's commands, without its shell scaffolding (set, cd, the if around the apt step, export)."""
    scaffolding = {"set", "cd", "if", "fi", "export", "then", "||"}
    kept = []
    for words in commands((ROOT / ".ci" / "run").read_text()):
        if words[0] in scaffolding or words[0].startswith(("!", "[")):
            continue
        kept.append(words)
    return kept


def test_ci_runs_exactly_the_readme_test_commands():
    assert ci_commands() == readme_test_commands()


def test_the_readme_commands_work_on_stock_debian():
    """No sudo (absent in root containers), apt-get update before every install, pip only inside a venv."""
    readme = (ROOT / "README.md").read_text()
    for block in bash_blocks(readme):
        updated = False
        for words in commands(block):
            assert words[0] != "sudo", block
            if words[:2] == ["apt-get", "update"]:
                updated = True
            if words[:2] == ["apt-get", "install"]:
                assert updated, f"apt-get install without apt-get update first:\n{block}"
            if words[0] in ("pip", "pip3") or words[:3] == ["python3", "-m", "pip"]:
                raise AssertionError(f"pip outside a virtual environment (Debian refuses it):\n{block}")
