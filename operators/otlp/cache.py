"""The decoders' caches of parsed resources: bounded in entries and in the bytes of their keys.

Producers send the same few resources request after request, so each distinct one is parsed
once. A producer that sends ever new ones (or huge ones) must not grow the process: a full cache
forgets everything and starts again, which costs one parse per resource it still sends.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")
# Realistic resources are about a kilobyte; megabytes of them are a producer gone wrong.
MAX_BYTES = 16 * 1024 * 1024


class ParseCache(Generic[K, V]):
    """A dict of parse results, cleared when `max_entries` or `max_bytes` (of keys) would pass."""

    def __init__(
        self, max_entries: int, size: Callable[[K], int], max_bytes: int = MAX_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size = size
        self._data: dict[K, V] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: K) -> bool:
        return key in self._data

    def get(self, key: K, default: D) -> V | D:
        return self._data.get(key, default)

    def put(self, key: K, value: V) -> None:
        """Keep `value` for `key`; a key larger than `max_bytes` alone is not kept."""
        if key in self._data:
            self._data[key] = value
            return
        size = self._size(key)
        if size > self.max_bytes:
            return
        if len(self._data) >= self.max_entries or self.bytes + size > self.max_bytes:
            self.clear()
        self._data[key] = value
        self.bytes += size

    def clear(self) -> None:
        self._data.clear()
        self.bytes = 0
