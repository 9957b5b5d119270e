"""agent.max_calls for a whole process, not for one transport.

One process may hold conversations over several transports at once on the same engines
(`zapvoice serve --gateway-port` with the playground; `zapvoice agent` with the playground), and
the limit protects those engines: so every transport of the process counts its calls in the same
CallSlots. Each still refuses a call in its own protocol's way when `full`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class CallSlots:
    def __init__(self, max_calls: int):
        if max_calls < 1:
            raise ValueError(f"max_calls must be 1 or more, not {max_calls}")
        self.max_calls = max_calls
        self.taken = 0  # calls in progress, over every transport

    @property
    def full(self) -> bool:
        return self.taken >= self.max_calls

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Count a call while the block runs. Check `full` first, with no await in between, so two calls
        cannot both take the last place (a call we place ourselves is counted, never refused)."""
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1
