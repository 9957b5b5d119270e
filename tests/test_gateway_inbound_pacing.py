"""The gateway holds a call's inbound audio to real time: a flood is dropped before it is decoded."""

from __future__ import annotations

from zapvoice.agent.gateway.inbound_pacing import RealTimeGate

SECOND = bytes(16000)  # s16le at 8 kHz


class ManualClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t


class Socket:
    label = "call test"

    def __init__(self) -> None:
        self.warned: list[tuple[str, str]] = []

    def warn_once(self, kind: str, message: str) -> None:
        self.warned.append((kind, message))


def gate(clock, max_ahead_s: float = 2.0) -> tuple[RealTimeGate, Socket]:
    socket = Socket()
    return RealTimeGate(socket, bytes_per_s=16000, max_ahead_s=max_ahead_s, clock=clock), socket


def test_audio_at_real_time_always_passes():
    clock = ManualClock()
    inbound, socket = gate(clock)
    for _ in range(3000):  # a minute of 20 ms chunks
        assert inbound.admit(SECOND[:320])
        clock.t += 0.02
    assert not socket.warned


def test_audio_ahead_of_real_time_by_more_than_the_margin_is_dropped_and_logged_once_per_burst():
    clock = ManualClock()
    inbound, socket = gate(clock)
    assert [inbound.admit(SECOND) for _ in range(5)] == [True, True, False, False, False]
    clock.t += 1.0
    assert inbound.admit(SECOND) and not inbound.admit(SECOND)  # one more second of room
    assert [kind for kind, _ in socket.warned] == ["audio ahead", "audio dropped", "audio ahead"]
    assert "3 audio messages (3.0 s of audio)" in socket.warned[1][1]


def test_a_late_gateway_catches_up_by_the_margin_only():
    clock = ManualClock()
    inbound, _ = gate(clock)
    clock.t += 60.0  # nothing came for a minute
    assert sum(inbound.admit(SECOND) for _ in range(10)) == 4  # 2 s behind allowed to catch up, 2 s ahead


def test_a_message_longer_than_the_margin_never_passes():
    inbound, socket = gate(ManualClock(), max_ahead_s=1.0)
    assert not inbound.admit(SECOND * 2)
    assert socket.warned[0][0] == "audio ahead"
