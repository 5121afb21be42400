"""One input message (Kafka record or recording line) to decoded columns or a dead letter."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from operators.otlp.errors import DecodeError, DecodeLimits
from operators.otlp.json_traces import load_json, trace_json_to_batch
from operators.otlp.json_wire import decode_trace_json_wire
from operators.otlp.metrics import MetricBatch, decode_metrics_proto, metrics_json_to_batch
from operators.otlp.proto_traces import decode_trace_proto
from operators.otlp.spans import JointSpans, SpanBatch
from operators.otlp.wire import decode_requests_wire, use_wire
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


class Decoded:
    """A decoded export request: spans or metrics, and its origin for tracing problems back.

    A request decoded with the others of its poll (`decode_poll`) is `part` of their JointSpans;
    its own `spans` are made from it when read (the flow's hot steps read the joint batch).
    """

    __slots__ = ("_spans", "metrics", "offset", "part", "partition", "source")

    def __init__(
        self,
        source: str,
        partition: int,
        offset: int,
        spans: SpanBatch | None = None,
        metrics: MetricBatch | None = None,
        part: tuple[JointSpans, int] | None = None,
    ) -> None:
        self.source = source
        self.partition = partition
        self.offset = offset
        self._spans = spans
        self.metrics = metrics
        self.part = part

    @property
    def spans(self) -> SpanBatch | None:
        if self._spans is None and self.part is not None:
            joint, k = self.part
            self._spans = joint.requests(k, k + 1)
        return self._spans

    @spans.setter
    def spans(self, spans: SpanBatch | None) -> None:
        self._spans = spans

    def span_count(self) -> int:
        """How many spans the request has (0 for metrics), without making its batch."""
        if self._spans is None and self.part is not None:
            joint, k = self.part
            return joint.size(k)
        return 0 if self.spans is None else len(self.spans)

    def end_range(self) -> tuple[int, int]:
        """The oldest and newest end time of the request's spans; it has some."""
        if self._spans is None and self.part is not None:
            joint, k = self.part
            return joint.end_range(k)
        assert self.spans is not None
        return int(self.spans.end_ns.min()), int(self.spans.end_ns.max())

    def __repr__(self) -> str:
        return (
            f"Decoded({self.source!r}, {self.partition}, {self.offset}, "
            f"spans={self.span_count()}, metrics={self.metrics is not None})"
        )


# Requests decoded in one walk (`decode_poll`): about this many bytes, enough to share a walk's
# fixed costs, few enough that its columns stay in cache (lean 512-span requests: 250 ns a span
# in walks of 16 to 32, 265 one by one, 500 in a poll's 256 at once). A request of half as much
# or more pays its fixed costs itself (a few percent) and is decoded alone.
JOINT_BYTES = 2 * 1024 * 1024


def decode_poll(poll: Sequence[RawMessage], limits: DecodeLimits) -> list[Decoded | DeadLetter]:
    """Each message of a poll decoded (or its dead letter), in order: consecutive small trace
    requests in one compiled walk per `JOINT_BYTES` (`decode_requests_wire`), the others one by
    one."""
    joint = len(poll) > 1 and use_wire()
    out: list[Decoded | DeadLetter] = []
    group: list[RawMessage] = []
    size = 0
    for m in poll:
        small = 0 < len(m.value) < JOINT_BYTES // 2
        if not (joint and m.error is None and m.signal == "traces" and small) or is_json(m.value):
            out.extend(_decode_together(group, limits))
            out.append(decode_message(m, limits))
            group, size = [], 0
            continue
        group.append(m)
        size += len(m.value)
        if size >= JOINT_BYTES:
            out.extend(_decode_together(group, limits))
            group, size = [], 0
    out.extend(_decode_together(group, limits))
    return out


def _decode_together(group: list[RawMessage], limits: DecodeLimits) -> list[Decoded | DeadLetter]:
    """Trace requests decoded in one walk, each a `part` of the JointSpans; one by one when
    there is one, or one is bad (so that it alone is a dead letter, with its own reason)."""
    if len(group) > 1:
        try:
            joint = decode_requests_wire([m.value for m in group], limits)
        except (DecodeError, RecursionError, OverflowError):
            pass
        else:
            return [
                Decoded(m.source, m.partition, m.offset, part=(joint, k))
                for k, m in enumerate(group)
            ]
    return [decode_message(m, limits) for m in group]


def span_batches(items: Sequence[Decoded]) -> list[SpanBatch]:
    """The spans of `items` in order, as few batches as they make: consecutive requests decoded
    together are their rows of the joint batch, one batch; requests without spans are left out."""
    out: list[SpanBatch] = []
    run: tuple[JointSpans, int, int] | None = None  # a joint, its first and next request
    for d in items:
        part = d.part if d._spans is None else None
        if part is not None and run is not None and part[0] is run[0] and part[1] == run[2]:
            run = (run[0], run[1], run[2] + 1)
            continue
        if run is not None:
            out.append(run[0].requests(run[1], run[2]))
            run = None
        if part is not None:
            run = (part[0], part[1], part[1] + 1)
        elif d.spans is not None and len(d.spans):
            out.append(d.spans)
    if run is not None:
        out.append(run[0].requests(run[1], run[2]))
    return [b for b in out if len(b)]


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
