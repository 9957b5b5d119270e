"""Where a benchmark's report goes: its own section of BENCHMARKS.md, between two markers.

Each script prints its report and writes exactly that text, under a header that says how it was
produced (command line, commit, machine, date, versions), between `<!-- NAME:begin -->` and
`<!-- NAME:end -->` in BENCHMARKS.md, replacing what the last run of that script wrote there.
Nothing else in the file is touched. `--no-write` only prints.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
PACKAGES = ("faster-whisper", "ctranslate2", "piper-tts", "onnxruntime", "numpy")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit() -> str:
    """`git rev-parse --short HEAD`, with "+ uncommitted changes" when the work tree differs from it."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown commit"
    return f"{head} + uncommitted changes" if _git("status", "--porcelain") else head


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def versions() -> str:
    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join(found + [f"python {platform.python_version()}"])


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


@dataclass(frozen=True)
class Start:
    """What is known when a run starts: when, at which commit, how loaded the machine was."""

    at: datetime.datetime
    commit: str
    head: str
    load: float


def start() -> Start:
    return Start(datetime.datetime.now(datetime.UTC), commit(), _git("rev-parse", "--short", "HEAD"),
                 os.getloadavg()[0])


def provenance(run: Start) -> list[str]:
    """The header of a published section: how and where its figures were produced (call at the end of the run)."""
    minutes = (datetime.datetime.now(datetime.UTC) - run.at).total_seconds() / 60
    head_now = _git("rev-parse", "--short", "HEAD")
    moved = f" (HEAD moved to {head_now} during the run)" if head_now != run.head else ""
    return [f"Command: `{command_line()}`", "",
            f"- commit: {run.commit}{moved}",
            f"- machine: {cpu_model()}, {os.cpu_count()} cores (shared and noisy: compare ratios within a table, "
            f"not absolute times across runs); load average before the run {run.load:.2f}",
            f"- date: {run.at:%Y-%m-%d %H:%M} UTC, {minutes:.0f} min",
            f"- versions: {versions()}"]


def arguments(doc: str, runs: int, runs_help: str) -> argparse.Namespace:
    """The command line the real-model benchmarks share: --runs and --no-write."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--runs", type=int, default=runs, help=runs_help)
    parser.add_argument("--no-write", action="store_true", help="print the report, leave BENCHMARKS.md alone")
    return parser.parse_args()


def publish(name: str, lines: list[str], write: bool, path: Path = BENCHMARKS_MD) -> None:
    """Print the report; with `write`, put exactly that text between the markers of `name` in `path`
    (the section is appended at the end when the markers are missing)."""
    text = "\n".join(lines).strip("\n")
    print(text)
    if not write:
        return
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in current and end in current and current.index(begin) < current.index(end):
        head, rest = current.split(begin, 1)
        tail = rest.split(end, 1)[1]
        updated = head + block + tail
    else:
        updated = current.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(updated, encoding="utf-8")
    print(f"\n(written to {path.name} between {begin} and {end})", file=sys.stderr)


now = start  # the first name of start(), used by bench_loop_guard.py
