"""A call's inbound audio held to real time, for the transports whose peer streams audio as it is spoken
(the 4143 gateway, the playground's page).

Audio far ahead of the call's clock is a flood (a broken or hostile client), and decoding,
resampling and listening to it would take the CPU the other calls need; so it is dropped before
any of that. A peer that fell behind (a network hiccup) may catch up, by the same margin at most.
"""

from __future__ import annotations

from typing import Protocol

from zapvoice.agent.clock import Clock


class Warns(Protocol):
    def warn_once(self, kind: str, message: str) -> None: ...


class RealTimeGate:
    def __init__(self, socket: Warns, bytes_per_s: int, max_ahead_s: float, clock: Clock, limit_name: str):
        """`limit_name`: where max_ahead_s comes from, for the warning."""
        self.socket = socket
        self.limit_name = limit_name
        self.bytes_per_s = bytes_per_s
        self.max_ahead_s = max_ahead_s
        self.clock = clock
        self._started = clock.now()
        self._admitted_s = 0.0  # audio let through, in seconds of the call
        self._dropped = 0  # messages dropped in the current burst
        self._dropped_s = 0.0

    def admit(self, message: bytes) -> bool:
        """Whether `message` is within max_ahead_s of real time; the start and end of each burst dropped are logged."""
        seconds = len(message) / self.bytes_per_s
        elapsed = self.clock.now() - self._started
        self._admitted_s = max(self._admitted_s, elapsed - self.max_ahead_s)
        ahead = self._admitted_s + seconds - elapsed
        if ahead > self.max_ahead_s:
            if not self._dropped:
                self.socket.warn_once("audio ahead", f"audio {ahead:.1f} s ahead of real time: dropping what comes "
                                                     f"faster ({self.limit_name} {self.max_ahead_s:g})")
            self._dropped += 1
            self._dropped_s += seconds
            return False
        if self._dropped:
            self.socket.warn_once("audio dropped", f"dropped {self._dropped} audio messages ({self._dropped_s:.1f} s "
                                                   "of audio) that came faster than real time")
            self._dropped, self._dropped_s = 0, 0.0
        self._admitted_s += seconds
        return True
