"""Decode failures: a reason a person can act on. They become dead letters, never crashes."""

from __future__ import annotations

from dataclasses import dataclass


class DecodeError(ValueError):
    """An input that cannot be turned into spans or metrics; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds that protect the flow from hostile or broken producers."""

    max_message_bytes: int = 16 * 1024 * 1024
    max_attribute_bytes: int = 1024 * 1024
    # The span attributes whose text the compiled decoder extracts in its one walk (the span
    # archive's selected attributes), with the events' JSON; None: only when something reads them.
    text_keys: tuple[str, ...] | None = None

    def check_size(self, data: bytes | str) -> None:
        """Refuse a message over `max_message_bytes` before any parsing work."""
        if len(data) > self.max_message_bytes:
            raise DecodeError(
                f"message of {len(data)} bytes exceeds max_message_bytes={self.max_message_bytes}"
            )
