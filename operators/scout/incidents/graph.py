"""The service call graph learned from traces: directed caller -> callee edges with expiry."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any


class CallGraph:
    """Edges last seen at an event time; an edge unseen for `ttl_ns` is forgotten."""

    def __init__(self, ttl_ns: int) -> None:
        self.ttl_ns = ttl_ns
        self.edges: dict[tuple[str, str], int] = {}

    def add(self, edges: Iterable[tuple[str, str]], now_ns: int) -> None:
        """Record the edges seen in a window ending at `now_ns`, and forget stale ones."""
        for caller, callee in edges:
            if caller and callee and caller != callee:
                self.edges[(caller, callee)] = now_ns
        for edge in [e for e, t in self.edges.items() if t < now_ns - self.ttl_ns]:
            del self.edges[edge]

    def reaches(self, src: str, dst: str, max_hops: int) -> bool:
        """Whether `src` calls `dst` directly or through at most `max_hops` edges."""
        if src == dst:
            return True
        out: dict[str, list[str]] = {}
        for a, b in self.edges:
            out.setdefault(a, []).append(b)
        seen = {src}
        frontier: deque[tuple[str, int]] = deque([(src, 0)])
        while frontier:
            node, depth = frontier.popleft()
            if depth >= max_hops:
                continue
            for nxt in out.get(node, ()):
                if nxt == dst:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append((nxt, depth + 1))
        return False

    def linked(self, a: str, b: str, max_hops: int) -> bool:
        """Whether one of the two services calls the other within `max_hops` (siblings are not)."""
        return self.reaches(a, b, max_hops) or self.reaches(b, a, max_hops)

    def knows(self, service: str) -> bool:
        """Whether the service takes part in any known edge (as caller or callee)."""
        return any(service in edge for edge in self.edges)

    def callees(self, service: str) -> set[str]:
        """Direct callees of a service."""
        return {b for a, b in self.edges if a == service}

    def snapshot(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {
            "ttl_ns": self.ttl_ns,
            "edges": sorted([a, b, t] for (a, b), t in self.edges.items()),
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> CallGraph:
        """Rebuild from `snapshot()`."""
        out = cls(data["ttl_ns"])
        out.edges = {(a, b): t for a, b, t in data["edges"]}
        return out
