"""A least-recently-used cache of synthesized speech, bounded by bytes.

ZuckZapGo asks for the same greeting on every call; after the first time it must come back in
milliseconds, not after another synthesis. Used from the event loop only, so no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from zapvoice.providers.contracts import Speech


class SpeechCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, Speech] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Speech | None:
        speech = self._entries.get(key)
        if speech is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return speech

    def put(self, key: Hashable, speech: Speech) -> None:
        size = speech.pcm.nbytes
        if size > self.max_bytes:
            return
        if key in self._entries:
            self.bytes -= self._entries.pop(key).pcm.nbytes
        self._entries[key] = speech
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.pcm.nbytes
