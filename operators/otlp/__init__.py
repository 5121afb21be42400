"""OTLP decoding: export requests (proto or JSON) to columnar span and metric batches."""

from operators.otlp.errors import DecodeError, DecodeLimits
from operators.otlp.json_traces import decode_trace_json
from operators.otlp.messages import Decoded, RawMessage, dead_letter, decode_message
from operators.otlp.metrics import MetricBatch, decode_metrics_json, decode_metrics_proto
from operators.otlp.proto_traces import decode_trace_proto
from operators.otlp.recording import iter_recording
from operators.otlp.spans import SpanBatch, concat_batches

__all__ = [
    "DecodeError",
    "DecodeLimits",
    "Decoded",
    "MetricBatch",
    "RawMessage",
    "SpanBatch",
    "concat_batches",
    "dead_letter",
    "decode_message",
    "decode_metrics_json",
    "decode_metrics_proto",
    "decode_trace_json",
    "decode_trace_proto",
    "iter_recording",
]
