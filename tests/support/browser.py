"""Headless Chromium (the Debian package) driven by Playwright, with a fake microphone playing a WAV.

Playwright's own browser downloads are never used: the system Chromium is launched with a fresh profile
and the flags that keep it off the network (this machine's closed network refuses its background
connections). The fake capture device loops the WAV, so give it the speech followed by long silence.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
QUIET_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--autoplay-policy=no-user-gesture-required"]


class BrowserMissing(Exception):
    pass


def screenshot_dir(default: Path) -> Path:
    """ZAPVOICE_SCREENSHOTS, or `default` (the test's tmp dir): where the test run's screenshots go."""
    folder = Path(os.environ.get("ZAPVOICE_SCREENSHOTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def chromium_with_microphone(wav: Path, profile: Path) -> Iterator:
    """A Playwright browser context whose microphone plays `wav` (16-bit PCM) in a loop; permission granted."""
    if not CHROMIUM.is_file():
        raise BrowserMissing(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserMissing(f"playwright is missing: pip install -e '.[test]' ({exc})") from exc
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, viewport={"width": 1100, "height": 720},
            args=[*QUIET_FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={wav}"])
        try:
            yield context
        finally:
            context.close()
