"""`zapvoice health`: is the running serve, agent or gateway alive? One GET of its /health, on the port that
command listens on by the same settings, so a container's check follows `--gateway-port`, ZAPVOICE_* and
--config instead of assuming port 8000."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from zapvoice.ports import listeners
from zapvoice.settings import Settings

CHECKED_COMMANDS = ("serve", "agent", "gateway")
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


class HealthError(Exception):
    """The command to check cannot be known, or it has no port to probe: a usage error (exit 2)."""


def health_url(command: str, settings: Settings) -> str:
    """The /health URL of `command` (one of CHECKED_COMMANDS) run with `settings`: on its first listener
    (zapvoice.ports: serve's and the agent's HTTP service, the gateway's socket), on loopback when it listens
    on every address."""
    found = listeners(settings, command)
    if not found:
        raise HealthError(f"`zapvoice {command}` listens on port 0 (any free port): give it a fixed port to check it")
    listener = found[0]
    tls = listener.what == "--gateway-port" and settings.gateway.certfile is not None
    host = _ANY_ADDRESS.get(listener.host, listener.host)
    return f"{'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:{listener.port}/health"


def probe(url: str, timeout_s: float) -> tuple[bool, str]:
    """(healthy, one line saying so). verify=False: the gateway's certificate names its public host, not the
    loopback address probed here, and this asks only whether our own process answers."""
    try:
        response = httpx.get(url, timeout=timeout_s, verify=False)
    except httpx.TimeoutException:
        return False, f"unhealthy: {url} did not answer within {timeout_s:g} s"
    except httpx.TransportError as exc:
        return False, f"unhealthy: {url}: {exc or type(exc).__name__}"
    if response.status_code != 200:
        return False, f"unhealthy: {url} answered HTTP {response.status_code}"
    try:
        body = json.dumps(response.json(), separators=(",", ":"))
    except ValueError:
        body = response.text.strip()[:200]
    return True, f"healthy: {url} {body}"


def running_argv(cmdline: bytes | None = None) -> list[str]:
    """The arguments of the zapvoice command that PID 1 runs (a container's main process), read from
    /proc/1/cmdline: `zapvoice health` alone then checks whatever `docker run IMAGE COMMAND` started. An init
    in front (docker run --init: `docker-init -- zapvoice ...`) or the script's interpreter is skipped."""
    if cmdline is None:
        try:
            cmdline = Path("/proc/1/cmdline").read_bytes()
        except OSError:
            cmdline = b""
    argv = [part.decode(errors="replace") for part in cmdline.removesuffix(b"\0").split(b"\0")]
    for index, part in enumerate(argv):
        if os.path.basename(part) == "zapvoice" and argv[index + 1:]:
            return argv[index + 1:]
    raise HealthError(f"PID 1 runs no zapvoice command: name the one to check, as it is run "
                      f"(zapvoice health {'|'.join(CHECKED_COMMANDS)} [its flags])")
