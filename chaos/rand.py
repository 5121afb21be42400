"""Seeded randomness for the shop: buffered numpy draws and fast unique ids.

The generator is the hot path of recordings and benchmarks, so draws are taken from numpy in blocks
and handed out one by one; the order of consumption is deterministic, so the same seed gives the same
bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

_BLOCK = 1 << 15
_MASK64 = (1 << 64) - 1
T = TypeVar("T")


class Rand:
    """A seeded source of uniforms, normals, Poisson counts and 64/128-bit ids."""

    def __init__(self, seed: int, id_salt: int = 0) -> None:
        """`id_salt` moves the id stream alone (the draws stay the seed's): runs of one seed at
        different start times must not reuse each other's trace ids."""
        self.gen = np.random.Generator(np.random.PCG64(seed))
        self._u: list[float] = []
        self._n: list[float] = []
        self._ui = 0
        self._ni = 0
        # ids come from a splitmix64 stream: unique, random-looking, and far cheaper than numpy calls
        base = int(self.gen.integers(0, 2**63))
        if id_salt:
            # The salt is mixed first (one splitmix step), so that nearby starts give states that
            # differ in most bits, not only in the salt's low ones.
            self._id_state = id_salt & _MASK64
            base ^= self._next64() >> 1
        self._id_state = base | 1

    def uniform(self) -> float:
        """A uniform draw in [0, 1)."""
        if self._ui >= len(self._u):
            self._u = self.gen.random(_BLOCK).tolist()
            self._ui = 0
        v = self._u[self._ui]
        self._ui += 1
        return v

    def normal(self) -> float:
        """A standard normal draw."""
        if self._ni >= len(self._n):
            self._n = self.gen.standard_normal(_BLOCK).tolist()
            self._ni = 0
        v = self._n[self._ni]
        self._ni += 1
        return v

    def lognormal_ms(self, median_ms: float, sigma: float) -> float:
        """A long-tailed duration (lognormal) with the given median, in milliseconds."""
        return median_ms * math.exp(sigma * self.normal())

    def chance(self, p: float) -> bool:
        """True with probability p."""
        return p > 0.0 and self.uniform() < p

    def choice(self, items: Sequence[T]) -> T:
        """One item, uniformly."""
        return items[int(self.uniform() * len(items))]

    def poisson(self, lam: float) -> int:
        """A Poisson count (numpy, not buffered: called once per tick and route)."""
        return int(self.gen.poisson(max(lam, 0.0)))

    def _next64(self) -> int:
        self._id_state = (self._id_state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._id_state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def span_id(self) -> int:
        """A non-zero 64-bit span id."""
        return self._next64() or 1

    def trace_id(self) -> int:
        """A non-zero 128-bit trace id."""
        return ((self._next64() << 64) | self._next64()) or 1
