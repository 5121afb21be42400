"""Text columns in Arrow's layout (int32 offsets, UTF-8 bytes), patched without a per-span walk.

The compiled decoder fills most values; the rest (resource fallbacks, values whose text Python
decides) are spliced in with one vectorised gather, so only the patched spans cost Python time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

# (offsets: int32 x n+1, data: the values' UTF-8 bytes end to end)
TextColumn = tuple[npt.NDArray[np.int32], bytes]

ABSENT = 0  # the span has no such attribute: its resource's value, else ""
PYTHON = 2  # the value's text is Python's str() of it, computed by the caller


def patch_text(
    column: TextColumn,
    state: npt.NDArray[np.int8],
    fallback: npt.NDArray[np.int64],
    fallback_text: Sequence[str],
    python_text: Callable[[int], str],
) -> TextColumn:
    """`column` with ABSENT spans set to `fallback_text[fallback[i]]` (when fallback[i] >= 0)
    and PYTHON spans set to `python_text(i)`."""
    offsets, data = column
    pieces = [t.encode() for t in fallback_text]
    source = np.where(state == ABSENT, fallback, -1)
    for i in np.flatnonzero(state == PYTHON).tolist():
        source[i] = len(pieces)
        pieces.append(python_text(i).encode())
    patched = source >= 0
    if not patched.any():
        return column
    piece_len = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    piece_at = np.concatenate(([0], np.cumsum(piece_len)[:-1])) + len(data)
    start = offsets[:-1].astype(np.int64)
    length = np.diff(offsets).astype(np.int64)
    start[patched] = piece_at[source[patched]]
    length[patched] = piece_len[source[patched]]
    return gather_text(data + b"".join(pieces), start, length)


def gather_text(
    data: bytes, start: npt.NDArray[np.int64], length: npt.NDArray[np.int64]
) -> TextColumn:
    """The column whose value i is `data[start[i] : start[i] + length[i]]`."""
    offsets = np.zeros(len(start) + 1, dtype=np.int64)
    np.cumsum(length, out=offsets[1:])
    total = int(offsets[-1])
    if total > np.iinfo(np.int32).max:
        raise ValueError(f"a text column of {total} bytes is over Arrow's 2 GiB string limit")
    index = np.repeat(start - offsets[:-1], length) + np.arange(total, dtype=np.int64)
    text = np.frombuffer(data, dtype=np.uint8)[index].tobytes() if total else b""
    return offsets.astype(np.int32), text


def strings_text(values: Sequence[str]) -> TextColumn:
    """A column from Python strings (the decoders without compiled text columns)."""
    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return offsets.astype(np.int32), b"".join(encoded)
