"""One input message (Kafka record or recording line) to decoded columns or a dead letter."""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from typing import Literal

from operators.otlp.errors import DecodeError, DecodeLimits
from operators.otlp.json_traces import load_json, trace_json_to_batch
from operators.otlp.json_wire import decode_trace_json_wire
from operators.otlp.metrics import MetricBatch, decode_metrics_proto, metrics_json_to_batch
from operators.otlp.proto_traces import decode_trace_proto
from operators.otlp.spans import SpanBatch
from sre_space.records import DeadLetter

Signal = Literal["traces", "metrics", "auto"]

# Dead letters carry the original bytes up to this size; larger ones are referenced by offset only.
MAX_DEADLETTER_PAYLOAD = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RawMessage:
    """Bytes plus where they came from: a topic or file, a partition, an offset."""

    source: str
    partition: int
    offset: int
    value: bytes
    signal: Signal = "auto"
    # recordings: the record's byte offset in the (decompressed) file
    byte_offset: int | None = None
    # set by a source that could not read the record: the message is a dead letter as it stands
    error: str | None = None


@dataclass(slots=True)
class Decoded:
    """A decoded export request: spans or metrics, and its origin for tracing problems back."""

    source: str
    partition: int
    offset: int
    spans: SpanBatch | None = None
    metrics: MetricBatch | None = None


# What bytes.lstrip() strips: ASCII whitespace.
_LEADING_SPACE = re.compile(rb"[ \t\n\r\x0b\x0c]*")


def is_json(value: bytes) -> bool:
    """JSON starts with '{' or '[' (after whitespace); an OTLP protobuf request never does: both
    bytes would open a deprecated group on a field number no export request has. But the
    whitespace may be a protobuf's first byte (b"\n", field 1's tag): see `_AMBIGUOUS`."""
    # Not `value.lstrip()`: a protobuf request starts with b"\n" (field 1, length-delimited), so
    # that would copy the whole message to look at one byte.
    start = _LEADING_SPACE.match(value)
    end = start.end() if start else 0
    return value[end : end + 1] in (b"{", b"[")


# Field 1's tag then a length of 123 or 91: a protobuf request whose first resource is that long
# (one small span's, say) reads as whitespace and a JSON object or array. Such a message is
# decoded as protobuf when it is not JSON.
_AMBIGUOUS = (b"\n{", b"\n[")


def decode_message(msg: RawMessage, limits: DecodeLimits) -> Decoded | DeadLetter:
    """Decode one message; any failure comes back as a DeadLetter with the reason."""
    if msg.error is not None:
        return dead_letter(msg, msg.error)
    try:
        return _decode(msg, limits)
    except DecodeError as exc:
        return dead_letter(msg, exc.reason)
    except RecursionError:
        return dead_letter(msg, "message nests too deeply to decode")
    except OverflowError as exc:
        # A kind, time or status code outside its column's integer type: hostile or broken input.
        return dead_letter(msg, f"a value is out of range for its column: {exc}")


def _decode(msg: RawMessage, limits: DecodeLimits) -> Decoded:
    value = msg.value
    if not value:
        # A Kafka tombstone (null value, which the source hands over as b"") or zero bytes: a
        # Collector never exports an empty request, so this is a broken producer, not "no spans".
        raise DecodeError("empty record value (null or zero bytes)")
    if is_json(value):
        try:
            return _decode_json(msg, limits)
        except DecodeError as as_json:
            if not value.startswith(_AMBIGUOUS):
                raise
            try:
                return _decode_proto(msg, limits)
            except DecodeError:
                raise as_json from None
    return _decode_proto(msg, limits)


def _decode_json(msg: RawMessage, limits: DecodeLimits) -> Decoded:
    value = msg.value
    out = Decoded(msg.source, msg.partition, msg.offset)
    if msg.signal != "metrics" and os.environ.get("SRE_PURE_PYTHON") != "1":
        limits.check_size(value)
        spans = decode_trace_json_wire(value, limits)  # None: not the compiled subset
        if spans is not None:
            out.spans = spans
            return out
    obj = load_json(value, limits)
    signal = msg.signal
    if signal == "auto":
        if "resourceMetrics" in obj or "resource_metrics" in obj:
            signal = "metrics"
        elif "resourceSpans" in obj or "resource_spans" in obj or "result" in obj:
            signal = "traces"
        else:
            raise DecodeError("JSON object is neither a trace nor a metrics export request")
    oversized = len(value) > limits.max_attribute_bytes
    if signal == "traces":
        out.spans = trace_json_to_batch(obj, limits, oversized=oversized)
    else:
        out.metrics = metrics_json_to_batch(obj, limits)
    return out


def _decode_proto(msg: RawMessage, limits: DecodeLimits) -> Decoded:
    value = msg.value
    out = Decoded(msg.source, msg.partition, msg.offset)
    if msg.signal == "metrics":
        out.metrics = decode_metrics_proto(value, limits)
    elif msg.signal == "traces":
        out.spans = decode_trace_proto(value, limits)
    else:
        # Untyped proto (a length-prefixed file): a metrics request read as traces fails the id
        # length checks, and a trace request read as metrics fails UTF-8 names, so try both.
        try:
            out.spans = decode_trace_proto(value, limits)
        except DecodeError as as_traces:
            try:
                out.metrics = decode_metrics_proto(value, limits)
            except DecodeError as as_metrics:
                raise DecodeError(
                    f"neither traces ({as_traces.reason}) nor metrics ({as_metrics.reason})"
                ) from None
    return out


def dead_letter(msg: RawMessage, reason: str) -> DeadLetter:
    """A dead letter for `msg`: the reason, its origin and (when small enough) the bytes."""
    value = msg.value or b""
    payload = base64.b64encode(value).decode() if len(value) <= MAX_DEADLETTER_PAYLOAD else None
    return DeadLetter(
        reason=reason,
        source=msg.source,
        partition=msg.partition,
        offset=msg.offset,
        size=len(value),
        payload_b64=payload,
        byte_offset=msg.byte_offset,
    )
