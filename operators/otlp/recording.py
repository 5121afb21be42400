"""Recorded OTLP files as the Collector's file exporter writes them.

`format: json` writes one export request per line; `format: proto` (or any compression) writes
each record behind a 4-byte big-endian length. Our own recordings may be gzip-compressed JSON lines
(`.gz`). The format is sniffed from the first byte, so callers need not say which it is.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, cast

from operators.otlp.messages import RawMessage, Signal

# What reading a damaged file raises: a truncated or corrupt gzip stream, or an I/O error.
UNREADABLE = (OSError, EOFError, zlib.error)

# (byte offset of the record, byte offset after it, the record, why it is unusable or None)
Record = tuple[int, int, bytes, str | None]


def open_recording(path: str | Path) -> IO[bytes]:
    """Open a recording for reading bytes, transparently gunzipping `.gz`."""
    p = Path(path)
    if p.suffix == ".gz":
        return cast(IO[bytes], gzip.open(p, "rb"))
    return p.open("rb")


def check_recordings(paths: Sequence[str | Path]) -> None:
    """FileNotFoundError naming every recording that is not a readable file, before any work."""
    # A named pipe streams a recording while it is being written (a long run need not be stored).
    missing = [str(p) for p in paths if not (Path(p).is_file() or Path(p).is_fifo())]
    if missing:
        raise FileNotFoundError(f"no such recording: {', '.join(missing)}")


def iter_recording(
    path: str | Path, signal: Signal = "auto", start_offset: int = 0
) -> Iterator[RawMessage]:
    """Messages of one recording; `offset` is the record's index, so a replay can resume.

    A file that cannot be read to its end (a truncated `.gz`) ends with one message that carries
    the error and the byte offset where reading stopped: it decodes to a dead letter.
    """
    source = str(path)
    index, done = 0, 0
    try:
        with open_recording(path) as fh:
            head = fh.peek(1)[:1] if hasattr(fh, "peek") else b""
            json_lines = head in (b"{", b" ", b"\n", b"")
            for start, end, value, error in _json_lines(fh) if json_lines else _prefixed(fh):
                if index >= start_offset:
                    yield RawMessage(source, 0, index, value, signal, start, error)
                index, done = index + 1, end
    except UNREADABLE as exc:
        if index >= start_offset:
            where = "decompressed byte" if Path(path).suffix == ".gz" else "byte"
            reason = f"unreadable from {where} {done} to the end of the file: {exc}"
            yield RawMessage(source, 0, index, b"", signal, done, reason)


def _json_lines(fh: IO[bytes]) -> Iterator[Record]:
    pos = 0
    for raw in fh:
        start, pos = pos, pos + len(raw)
        line = raw.strip()
        if line:
            yield start, pos, line, None


def _prefixed(fh: IO[bytes]) -> Iterator[Record]:
    pos = 0
    while True:
        head = fh.read(4)
        if not head:
            return
        start = pos
        if len(head) < 4:
            # A torn last record: dead-lettered rather than silently lost.
            yield start, start + len(head), head, f"torn length prefix of {len(head)} bytes"
            return
        (size,) = struct.unpack(">I", head)
        body = fh.read(size)
        pos += 4 + len(body)
        if len(body) < size:
            yield start, pos, body, f"torn record: its prefix says {size} bytes, {len(body)} remain"
            return
        yield start, pos, body, None
