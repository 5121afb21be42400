"""Recorded OTLP files as the Collector's file exporter writes them.

`format: json` writes one export request per line; `format: proto` (or any compression) writes
each record behind a 4-byte big-endian length. Our own recordings may be gzip-compressed JSON lines
(`.gz`). The format is sniffed from the first byte, so callers need not say which it is.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

from operators.otlp.messages import RawMessage, Signal


def open_recording(path: str | Path) -> IO[bytes]:
    """Open a recording for reading bytes, transparently gunzipping `.gz`."""
    p = Path(path)
    if p.suffix == ".gz":
        return cast(IO[bytes], gzip.open(p, "rb"))
    return p.open("rb")


def iter_recording(
    path: str | Path, signal: Signal = "auto", start_offset: int = 0
) -> Iterator[RawMessage]:
    """Messages of one recording; `offset` is the record's index, so a replay can resume."""
    source = str(path)
    with open_recording(path) as fh:
        head = fh.peek(1)[:1] if hasattr(fh, "peek") else b""
        records = _json_lines(fh) if head in (b"{", b" ", b"\n", b"") else _length_prefixed(fh)
        for offset, value in enumerate(records):
            if offset >= start_offset:
                yield RawMessage(source, 0, offset, value, signal)


def _json_lines(fh: IO[bytes]) -> Iterator[bytes]:
    for line in fh:
        line = line.strip()
        if line:
            yield line


def _length_prefixed(fh: IO[bytes]) -> Iterator[bytes]:
    while True:
        head = fh.read(4)
        if not head:
            return
        if len(head) < 4:
            # A torn last record: hand it on so it is dead-lettered rather than silently lost.
            yield head
            return
        (size,) = struct.unpack(">I", head)
        body = fh.read(size)
        yield body
        if len(body) < size:
            return
